import { hostname, userInfo } from 'node:os';
import type pg from 'pg';
import { RunFailedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Ledger, RunStats } from '../ledger/ledger.js';
import { withLockRetry } from '../db/lockRetry.js';
import { type PublicationKind, type PublishedBy, type PublishedEvent } from '../ledger/publications.js';

/**
 * How old the attach must be before the pointer may name the run. Not needed in theory (the older
 * readers' wait below covers statements planned before the attach), but under load on PostgreSQL 18
 * 3 of 6,610 polls still saw an empty view when the pointer moved within milliseconds of the attach:
 * this margin closes whatever window is left. A real run attaches at plan time, seconds before.
 */
const attachSettleMs = 1_000;

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
