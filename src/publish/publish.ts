import { hostname, userInfo } from 'node:os';
import type pg from 'pg';
import { RunFailedError } from '../errors.js';
import { SqlState, sqlStateOf } from '../db/sqlstate.js';
import type { Logger } from '../log.js';
import type { Ledger, RunStats } from '../ledger/ledger.js';
import { withLockRetry } from '../db/lockRetry.js';
import { type PublicationKind, type PublishedBy, type PublishedEvent } from '../ledger/publications.js';

/**
 * Attaches the run's table to score_data before any of its chunks is scored, and long before it is
 * published, so that a reader sees the previous complete run or the new one, never a mix or nothing
 * (docs/architecture.md "Complete or nothing"). A reader's statement is planned with the partitions that exist then and
 * executed with a newer snapshot; had the attach and the pointer moved in one transaction, a statement
 * planned just before that commit and executed just after it would follow the new pointer to a
 * partition its plan lacks, and see no rows. Attached at plan time, the partition is in every plan by
 * the time the pointer can name it; customer_scores prunes it away until then, and
 * customer_score_history shows published runs only. Idempotent: a resume (or a run planned before this
 * rule) attaches a table that is not attached yet, building its primary key first if it lacks one.
 */
export async function attachRunTable(c: pg.ClientBase, ledger: Ledger, runId: string, log: Logger): Promise<void> {
  const state = await ledger.storage.state(c, runId);
  if (!state.exists || state.attached) return;
  if (!state.hasKey) {
    try {
      await ledger.storage.addKey(c, runId);
    } catch (err) {
      throw duplicateKeyError(err, runId) ?? err;
    }
  }
  await withLockRetry(c, log, 'attaching the run table to score_data', () => ledger.storage.attach(c, runId));
  await ledger.markAttached(c, runId);
}

/**
 * How old the attach must be before the pointer may name the run. Not needed in theory (the older
 * readers' wait below covers statements planned before the attach), but under load on PostgreSQL 18
 * 3 of 6,610 polls still saw an empty view when the pointer moved within milliseconds of the attach:
 * this margin closes whatever window is left. A real run attaches at plan time, seconds before.
 */
const attachSettleMs = 1_000;

/**
 * Registers the run's model in this schema (its first non-dry run does), which adds the model's branch
 * to customer_scores (sql/006_models.sql). Done when the run starts, long before its publish, for the
 * same reason the run's table is attached then: a reader's plan must know the branch before the
 * pointer names the model's run. Replacing the view waits for its readers, at most 5 s at a time.
 */
export async function registerModel(c: pg.ClientBase, ledger: Ledger, modelName: string, log: Logger): Promise<void> {
  if (await ledger.modelRegistered(c, modelName)) return;
  await withLockRetry(c, log, `registering model ${modelName}`, async () => {
    if (await ledger.registerModel(c, modelName)) await ledger.refreshScoreViews(c);
  });
  log.info(
    { model: modelName },
    `model ${modelName} registered in schema ${ledger.schema}: customer_scores now has its rows once it publishes (WHERE model_name = '${modelName}')`,
  );
}

/** How a publish is made (publishRun). */
export interface PublishOptions {
  /** The run lock must still be ours when the pointer moves (src/ledger/runLock.ts). */
  fence?: ((c: pg.ClientBase) => Promise<void>) | undefined;
  /** How old the attach must be (default {@link attachSettleMs}; tests shorten it). */
  settleMs?: number | undefined;
  kind?: Exclude<PublicationKind, 'rollback' | 'retire'> | undefined;
  /** The run's table was analyzed after its last chunk (the run does it beside its statistics, src/publish/analyzeEarly.ts). */
  analyzed?: boolean | undefined;
  /** Recorded on the publication: a person's reason, and whether `--force` took it past a gate. */
  reason?: string | undefined;
  forced?: boolean | undefined;
}

/** One publish (publishRun): the run, the stats stored on it as it is marked published, and how. */
export interface PublishRequest extends PublishOptions {
  client: pg.ClientBase;
  ledger: Ledger;
  runId: string;
  stats: RunStats;
  log: Logger;
}

/** How long publish waits for reader transactions that began before the run's table was attached. */
const oldReaderWaitMs = 30_000;

/**
 * Makes a finished run what readers see, in one short transaction: move the published_run pointer and
 * mark the run succeeded. A reader's statement sees the old pointer or the new one, never a mix
 * (docs/architecture.md "Complete or nothing"). No rename swap: that would take ACCESS EXCLUSIVE and queue behind readers.
 */
export async function publishRun(opts: PublishRequest): Promise<PublishedEvent> {
  const { client: c, ledger, runId, stats, log, fence, settleMs = attachSettleMs, kind = 'publish', analyzed = false } = opts;
  const state = await ledger.storage.state(c, runId);
  if (!state.attached)
    throw new RunFailedError(`the scores of run ${runId} are not attached to ${ledger.schema}.score_data; resume it with \`scorejob resume ${runId}\``, runId);
  // A statement planned around the attach's commit takes its snapshot right after planning: once the
  // attach is this old, any such statement saw the old pointer, or still runs (and is waited for below).
  const wait = await ledger.msUntilAttachedFor(c, runId, settleMs);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  await waitForOlderReaders(c, ledger, runId, log);
  if (!analyzed) await ledger.storage.analyze(c, runId);
  const publications = ledger.publications;
  // A run scored before schema version 7 (published by force now) gets its percentiles' cut points.
  await publications.ensureCuts(c, runId);
  let event: PublishedEvent | undefined;
  await withLockRetry(c, log, 'publishing', async () => {
    // The pointer, the publication's record and its notification (sent at COMMIT) in one transaction.
    event = await publications.movePointer(c, runId, kind, { ...publishedBy(opts.reason), forced: opts.forced });
    await ledger.markPublished(c, runId, stats);
    // The run lock must still be ours (src/ledger/runLock.ts): never publish after another process took it over.
    await fence?.(c);
  });
  return event as PublishedEvent;
}

/** This process, as score_publications records who published. */
export function publishedBy(reason?: string): PublishedBy {
  let osUser: string;
  try {
    osUser = userInfo().username;
  } catch {
    osUser = process.env.USER ?? 'unknown';
  }
  return { osUser, host: hostname(), pid: process.pid, reason };
}

/**
 * A transaction that began before the attach committed may still plan with the partitions it saw
 * then (it holds its lock on score_data, so it need not look again): wait for such transactions to end
 * before the pointer names the new run. Usually there are none (the attach was at plan time); a session
 * idle in a transaction for longer than the wait is named in a warning and not waited for.
 */
async function waitForOlderReaders(c: pg.ClientBase, ledger: Ledger, runId: string, log: Logger): Promise<void> {
  const deadline = performance.now() + oldReaderWaitMs;
  for (let waited = false; ; waited = true) {
    const old = await ledger.readersOlderThanAttach(c, runId);
    if (old.length === 0) return;
    if (performance.now() >= deadline) {
      log.warn(
        { pids: old.map((o) => o.pid) },
        `publishing although ${old.length} session(s) in a transaction older than this run still hold a lock on score_data (pids ${old.map((o) => o.pid).join(', ')}): their next statement may see no scores until they end their transaction`,
      );
      return;
    }
    if (!waited) log.info({ pids: old.map((o) => o.pid) }, `waiting for ${old.length} reader transaction(s) older than this run to end before publishing`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A unique violation on the run's key, in words: the source key is not unique. */
export function duplicateKeyError(err: unknown, runId: string): RunFailedError | undefined {
  if (sqlStateOf(err) !== SqlState.uniqueViolation) return undefined;
  const detail = ((err as { detail?: string }).detail ?? '').replace(/\s+/g, ' ');
  return new RunFailedError(`the source key is not unique, so a customer was scored twice (${detail}); fix the source key`, runId, { cause: err });
}

/** One retention pass (applyRetention): the model's runs, how many to keep, and the run in progress (never touched). */
export interface RetentionRequest {
  client: pg.ClientBase;
  ledger: Ledger;
  modelName: string;
  keep: number;
  log: Logger;
  current?: string | undefined;
}

/**
 * What retention keeps of one model's runs (docs/downstream.md "Every publication, and what changed"); other models' runs are never touched:
 * - the published run, always, whatever `keep` says, and the newest published runs up to `keep` in all;
 * - the table of a run that was never published (failed, interrupted, stopped by a gate, dry) until a
 *   later run is published (from then on neither `resume` nor `publish --force` accepts it), and at
 *   most `keep` of them in any case, the newest.
 * - a run made as part of another (score_runs.champion_run_id) while that run's scores are kept, unless
 *   it was published (then it is a run like any other).
 * Everything else is dropped whole: attached tables are detached CONCURRENTLY (readers never blocked)
 * first. `current` (the run in progress, if any) is never touched. Best effort: a failure is logged,
 * and the next run finishes the job.
 */
export async function applyRetention(opts: RetentionRequest): Promise<string[]> {
  const { client: c, ledger, modelName, keep, log, current } = opts;
  const all = await ledger.runTables(c, modelName, current);
  // A sibling run never published is no kept run of its own: it goes with the run it is part of (a published one counts as any run).
  const rows = all.filter((r) => r.champion_run_id === null || r.published);
  const published = rows.filter((r) => r.published && !r.is_pointer);
  const unpublished = rows.filter((r) => !r.published);
  const pointerKept = rows.some((r) => r.is_pointer) ? 1 : 0;
  const champions = [
    // The published run counts as one of `keep`.
    ...published.slice(Math.max(0, keep - pointerKept)),
    ...unpublished.filter((r) => r.superseded),
    ...unpublished.filter((r) => !r.superseded).slice(Math.max(0, keep)),
  ];
  const doomedIds = new Set(champions.map((r) => r.run_id));
  const listed = new Set(all.map((r) => r.run_id));
  const doomed = [
    ...champions,
    // The run it is part of dropped now, or before (its table gone; a running run's sibling is running too, and not listed).
    ...all.filter(
      (r) =>
        r.champion_run_id !== null && !r.published && (doomedIds.has(r.champion_run_id) || (!listed.has(r.champion_run_id) && r.champion_run_id !== current)),
    ),
  ];
  const dropped: string[] = [];
  // A layered only_new run reads its carried scores from the run below it (sql/013_layers.sql): that run
  // stays while a run it does not drop lies on it; layers go first, newest first.
  const layers = doomed.length > 0 ? await ledger.onlyNew.layers(c) : [];
  for (const row of doomed.sort((a, b) => Number(b.run_id) - Number(a.run_id))) {
    if (layers.some((l) => l.underRunId === row.run_id && !dropped.includes(l.runId))) {
      log.info({ kept_run: row.run_id }, `keeping the scores of run ${row.run_id}: a kept only_new run carries scores from them`);
      continue;
    }
    try {
      await c.query(`SET lock_timeout = '10s'`);
      await ledger.storage.detachAndDrop(c, row.run_id, row);
      await dropRunLeftovers(c, ledger, row.run_id);
      dropped.push(row.run_id);
    } catch (err) {
      log.warn({ dropped_run: row.run_id, err: (err as Error).message }, `could not drop the scores of run ${row.run_id} yet; the next run will try again`);
    } finally {
      await c.query(`RESET lock_timeout`).catch(() => undefined);
    }
  }
  return dropped.sort((a, b) => Number(a) - Number(b));
}

/** What goes with a run's scores when they are dropped: its reasons table, its layer and stored histogram, an only-new run's frozen rows. */
export async function dropRunLeftovers(c: pg.ClientBase, ledger: Ledger, runId: string): Promise<void> {
  await ledger.storage.dropReasonsTable(c, runId);
  await ledger.onlyNew.dropLayer(c, runId);
  await ledger.storage.dropFrozenRows(c, runId);
}
