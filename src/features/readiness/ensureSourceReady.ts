import { join } from 'node:path';
import type pg from 'pg';
import { describeDb, type Config } from '../../config.js';
import { SourceNotReadyError, StaleSourceError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { MetricsTarget } from '../../observe/metrics.js';
import { exportSourceReady } from './readyMetric.js';
import { checkSourceReady } from './sourceReady.js';

/** The parts of a run's context the readiness check reads. */
export interface ReadinessContext {
  config: Config;
  log: Logger;
  /** Where the run's metrics go (`--metrics-file`, `--metrics-push`). */
  observe?: { metricsFile?: string | undefined; metricsPush?: string | undefined } | undefined;
}

/** The parts of a run's options the readiness check reads. */
export interface ReadinessOptions {
  modelDir: string;
  tickAt?: Date | undefined;
  /** `--ready-deadline`, ms after the tick. */
  readyDeadlineMs?: number | undefined;
}

/**
 * Checks `source.ready_when` before anything of the run is written and exports the readiness gauges.
 * Throws what {@link checkSourceReady} throws: 75 not ready yet, 1 past the deadline, 2 a broken query.
 */
export async function ensureSourceReady(
  client: pg.ClientBase,
  ctx: ReadinessContext,
  manifest: { name: string; readyWhen?: string | undefined },
  opts: ReadinessOptions,
): Promise<void> {
  const metrics: MetricsTarget = { file: ctx.observe?.metricsFile, push: ctx.observe?.metricsPush };
  const run = { log: ctx.log, config: ctx.config, tickAt: opts.tickAt, model: manifest };
  try {
    const ready = await checkSourceReady(client, {
      readyWhen: manifest.readyWhen,
      manifestFile: join(opts.modelDir, 'manifest.json'),
      where: describeDb(ctx.config.db),
      tickAt: opts.tickAt,
      deadlineMs: opts.readyDeadlineMs,
    });
    if (ready === undefined) return;
    run.log.debug({ source_ready: true }, `source ready: source.ready_when holds on ${describeDb(run.config.db)}`);
    await exportSourceReady(metrics, run.model.name, 'ready', run.log);
  } catch (err) {
    const stale = err instanceof StaleSourceError;
    if (stale || err instanceof SourceNotReadyError) {
      run.log.info({ source_ready: false, error_kind: stale ? 'stale_source' : undefined, tick_at: run.tickAt?.toISOString() }, (err as Error).message);
      await exportSourceReady(metrics, run.model.name, stale ? 'stale' : 'not_ready', run.log);
    }
    throw err;
  }
}
