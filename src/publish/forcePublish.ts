import { hostname, userInfo } from 'node:os';
import { UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Config } from '../config.js';
import type { ForcedPublish, Ledger, Queryable, RejectCount, RunParams, RunRow } from '../ledger/ledger.js';
import type pg from 'pg';
import { exportRunMetrics } from '../observe/metrics.js';
import type { MetricFamily, MetricsRun } from '../report/featureReport.js';
import { modelOfRun, withModelLock } from './modelLock.js';
import { applyRetention } from '../ledger/retention.js';
import { attachRunTable } from '../ledger/runAttach.js';
import { publishRun } from './publish.js';
import { runOnPublishCommand } from './onPublishCommand.js';
import { checkForceReason, forceCommand } from './forceReason.js';
import { reasonsLost, type ReasonsLost } from './reasonsLost.js';

export type { ForcedPublish };

export interface ForcePublishResult {
  runId: string;
  modelName: string;
  modelVersion: string;
  rowsScored: number;
  rowsRejected: number;
  psi: number | null;
  overriddenError: string | null;
  droppedRuns: string[];
  reason: string | undefined;
  /** Set when the run it replaced had reasons (`--reasons K`) and this one has none. */
  reasonsLost: ReasonsLost | undefined;
}

/** The words of the feature that made a run as part of another, saying how to publish it instead (src/features/index.ts partOfAnother). */
export type ForcePartOf = (run: { runId: string; params: Readonly<RunParams> }) => Promise<string | undefined> | string | undefined;

/**
 * `scorejob publish <run-id> --force`: publishes a run that a publish gate (`--max-reject-ratio`,
 * `--max-psi`) stopped, after a person looked at it. Only such a run: every chunk done, status
 * `failed`, error kind `gate`, not a dry run, not superseded by a later published run; anything else
 * is refused (exit 2). Takes the run lock like a run (exit 75 if held) and publishes through the same
 * `publishRun` as a run, recording who forced it on the run.
 */
/** Where a forced publish exports its metrics, and the run features' gauges it adds (src/features/reports.ts). */
export interface ForceMetrics {
  metricsFile?: string | undefined;
  metricsPush?: string | undefined;
  featureMetrics?: ((c: pg.ClientBase, schema: string, run: MetricsRun) => Promise<MetricFamily[]>) | undefined;
}

export async function forcePublish(
  ctx: { config: Config; log: Logger } & ForceMetrics,
  runId: string,
  opts: {
    force: boolean;
    reason?: string | undefined;
    onPublishCommand?: string | undefined;
    partOf?: ForcePartOf | undefined;
  },
): Promise<ForcePublishResult> {
  if (!/^\d{1,18}$/.test(runId)) throw new UsageError(`run id "${runId}" is not a run number (see \`scorejob runs\`)`);
  const reason = checkForceReason(runId, opts);
  const started = performance.now();
  // The run's model decides which lock: read it, take the model's lock, then read the run again under it.
  return withModelLock(ctx, 'publish', modelOfRun(runId), async ({ client, ledger, lock }) => {
    const run = await ledger.getRun(client, runId);
    await checkPublishable(client, ledger, run, { ...opts, runId });
    const r = run as RunRow;
    const log = ctx.log.child({ run_id: runId });
    const previousStats = r.stats ?? {};
    const forced: ForcedPublish = { at: new Date().toISOString(), by: safeUser(), host: hostname(), pid: process.pid, overridden_error: r.error, reason };
    // A run stopped by a gate before its table was attached at plan time (schema version 1).
    await attachRunTable(client, ledger, runId, log);
    const stats = { ...previousStats, forced_publish: forced };
    const event = await publishRun({ client, ledger, runId, stats, log, fence: (c) => lock.fence(c), kind: 'force', reason, forced: true });
    // A run made as part of it, stopped with it by the gate, follows it: succeeded (publishable by its own command).
    const sibling = await ledger.siblingOf(client, runId);
    if (sibling?.status === 'failed') await ledger.finishRun(client, sibling.run_id, 'succeeded');
    await runOnPublishCommand(opts.onPublishCommand, event, log);
    const dropped = await applyRetention({ client, ledger, modelName: r.model_name, keep: r.params.keepRuns ?? 12, log });
    const psi = previousStats.drift?.psi ?? null;
    await reportForced({ ctx, client, ledger, run: r, log, forced, dropped, psi, durationMs: performance.now() - started });
    const lost = await reasonsLost(client, ledger, event.previous_run_id, r);
    return {
      runId,
      modelName: r.model_name,
      modelVersion: r.model_version,
      rowsScored: Number(r.rows_scored),
      rowsRejected: Number(r.rows_rejected),
      psi,
      overriddenError: r.error,
      droppedRuns: dropped,
      reason,
      reasonsLost: lost,
    };
  });
}

/** The forced publish in words (a warn line naming what readers now miss) and in the run's metrics. */
async function reportForced(f: {
  ctx: { config: Config } & ForceMetrics;
  client: pg.ClientBase;
  ledger: Ledger;
  run: RunRow;
  log: Logger;
  forced: ForcedPublish;
  dropped: string[];
  psi: number | null;
  durationMs: number;
}): Promise<void> {
  const { client, ledger, log, forced, dropped, psi } = f;
  const r = f.run;
  const runId = r.run_id;
  const reason = forced.reason;
  const missing = await ledger.rejectsByReason(client, runId);
  log.warn(
    {
      forced_publish: true,
      overridden_error: r.error,
      reason,
      by: forced.by,
      psi,
      rows_scored: Number(r.rows_scored),
      rows_rejected: Number(r.rows_rejected),
      rejects_by_reason: missing,
      dropped_runs: dropped,
    },
    `run ${runId} published by force (--force) over its failed gate: ${r.error ?? 'no error recorded'}; reason: ${reason}; ` +
      missingCustomers(f.ctx.config.schema, runId, r.model_name, Number(r.rows_rejected), missing),
  );
  await exportRunMetrics(
    { file: f.ctx.metricsFile, push: f.ctx.metricsPush },
    {
      model: r.model_name,
      runId,
      status: 'succeeded',
      errorKind: null,
      published: true,
      dryRun: false,
      forced: true,
      durationMs: f.durationMs,
      rowsScored: Number(r.rows_scored),
      rowsRejected: Number(r.rows_rejected),
      psi,
      features: await featureGauges(f.ctx, f.client, { runId, model: r.model_name }, log),
    },
    () => ledger.lastSuccessAt(client, r.model_name),
    log,
  );
}

/** The features' gauges (the run's feature drift, its model's AUC) for the export; left out, with a warning, when they cannot be read. */
async function featureGauges(ctx: { config: Config } & ForceMetrics, c: pg.ClientBase, run: MetricsRun, log: Logger): Promise<MetricFamily[]> {
  if (!ctx.featureMetrics || (ctx.metricsFile === undefined && ctx.metricsPush === undefined)) return [];
  return ctx.featureMetrics(c, ctx.config.schema, run).catch((err: unknown) => {
    log.warn({ err: (err as Error).message }, `the run features' metrics were left out of the export: ${(err as Error).message}`);
    return [];
  });
}

/** Every reason a run cannot be published by force, each a usage error (exit 2) that says what to do instead. */
async function checkPublishable(
  client: Queryable,
  ledger: Ledger,
  run: RunRow | undefined,
  opts: { runId: string; force: boolean; partOf?: ForcePartOf | undefined },
): Promise<void> {
  const { runId, force } = opts;
  if (!run) throw new UsageError(`there is no run ${runId} (see \`scorejob runs\`)`);
  const part = run.params.championRunId;
  if (part) {
    const words = await opts.partOf?.({ runId, params: run.params });
    throw new UsageError(words ?? `run ${runId} was made as part of run ${part}; publish it through that run (see \`scorejob runs show ${part}\`)`);
  }
  if (run.published_at !== null) throw new UsageError(`run ${runId} is already published; there is nothing to do`);
  if (run.status !== 'failed' || run.error_kind !== 'gate') {
    const why = run.status === 'failed' ? `failed (${run.error_kind ?? 'unknown'}: ${run.error ?? 'no error recorded'})` : run.status;
    throw new UsageError(
      `run ${runId} is ${why}; only a run stopped by a publish gate (--max-reject-ratio, --max-psi) can be published with \`scorejob publish --force\`${run.status === 'failed' || run.status === 'interrupted' ? `; continue it with \`scorejob resume ${runId}\`` : ''}`,
    );
  }
  if (run.dry_run) throw new UsageError(`run ${runId} was a dry run: its scores were never meant to be published; start a real run with \`scorejob run\``);
  if (Number(run.rows_scored) === 0) {
    throw new UsageError(
      `run ${runId} scored no customer (${run.rows_rejected} rejected): publishing it would empty ${ledger.schema}.customer_scores; fix the model or the data, then start a new run with \`scorejob run\``,
    );
  }
  if ((await ledger.pendingChunkCount(client, runId)) > 0 || run.chunks_total === null)
    throw new UsageError(`run ${runId} has chunks that are not done; continue it with \`scorejob resume ${runId}\``);
  const newer = await ledger.laterPublishedRun(client, runId, run.model_name);
  if (newer !== undefined) throw new UsageError(`run ${runId} was superseded by run ${newer}, published later; publishing it would go back in time`);
  if (!(await ledger.storage.exists(client, ledger.runTable(runId))))
    throw new UsageError(`the scores of run ${runId} are gone (its table was dropped); start a new run instead`);
  if (!force)
    throw new UsageError(
      `run ${runId} was stopped by a publish gate (${run.error ?? 'no error recorded'}); after a person has looked (\`scorejob runs show ${runId}\`), publish it with ${forceCommand(runId)}`,
    );
}

/** Who is not in customer_scores after a forced publish, and where a reader and an operator find them. */
function missingCustomers(schema: string, runId: string, model: string, rejected: number, byReason: readonly RejectCount[]): string {
  if (rejected === 0) return 'every customer of the source has a score';
  const reasons = byReason.map((x) => `${x.reason}${x.column === null ? '' : ` in ${x.column}`}: ${x.rows}`).join(', ');
  return (
    `${rejected} customer(s) the run could not score (${reasons}) have no row in ${schema}.customer_scores for model ${model}: ` +
    `they are listed in ${schema}.customer_score_rejects (readers) and ${schema}.score_rejects WHERE run_id = ${runId} (with the offending values)`
  );
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}
