import type { ColumnBatch } from '../columns.js';
import type { Logger } from '../log.js';
import { createFeatureCounters, transformBatch, type FeaturePlan, type ModelInput, type Reject } from '../model/features.js';
import { toFeatureCounts, type FeatureCounters } from '../stats/featureStats.js';
import type { ChunkRow } from '../ledger/ledger.js';
import { exportRunMetrics, type RunMetrics } from './metrics.js';
import type { MetricFamily } from '../report/featureReport.js';
import { RunProgress, startProgress, type ProgressOptions, type ProgressReporter } from './progress.js';

/** What a run invocation asked to be told: progress while it runs, metrics when it ends. */
export interface ObserveDeps {
  progress?: ProgressOptions | undefined;
  /** Prometheus textfile written at the end of the run, success or failure. */
  metricsFile?: string | undefined;
  /** Pushgateway the same metrics are pushed to at the end of the run. */
  metricsPush?: string | undefined;
}

/**
 * What the people watching a run see of it, in one place: the feature counters gathered while
 * transforming (stored per chunk), the progress line or log lines, and the metrics file at the end.
 */
export class RunObserver {
  private counters: FeatureCounters;
  private progress: RunProgress | undefined;
  private reporter: ProgressReporter | undefined;
  private scored = 0;
  private rejected = 0;
  /** Rows scored before this invocation (the done chunks a resume takes over). */
  private scoredBefore = 0;
  private readonly started = performance.now();

  constructor(
    private readonly observe: ObserveDeps | undefined,
    private readonly log: Logger,
    private readonly plan: FeaturePlan,
  ) {
    this.counters = createFeatureCounters(plan);
  }

  /** Level of the per-chunk log line: debug when the live line is on a terminal, else info. */
  get chunkLogLevel(): 'debug' | 'info' {
    return this.observe?.progress?.tty ? 'debug' : 'info';
  }

  /** The chunk loop's transform: the model's, with fresh feature counters for each chunk attempt. */
  readonly transform = (batch: ColumnBatch, out: ModelInput, rejects: Reject[]): number => {
    this.counters = createFeatureCounters(this.plan);
    return transformBatch(batch, this.plan, out, rejects, this.counters);
  };

  /** The chunk's feature counters, committed with it in `score_chunks.stats.features`. */
  readonly chunkStats = (): Record<string, unknown> => ({ features: toFeatureCounts(this.plan, this.counters) });

  /**
   * Starts reporting. `sourceRows` is known when this invocation planned the run; a resume estimates
   * the rows left from its pending chunks (each planned at `chunkSize` rows).
   */
  begin(chunks: readonly ChunkRow[], chunkSize: number, sourceRows: number | undefined): void {
    const done = chunks.filter((c) => c.status === 'done');
    this.scored = done.reduce((s, c) => s + (c.rows_scored ?? 0), 0);
    this.scoredBefore = this.scored;
    this.rejected = done.reduce((s, c) => s + (c.rows_rejected ?? 0), 0);
    const customers = this.scored + this.rejected;
    const total = sourceRows ?? customers + (chunks.length - done.length) * chunkSize;
    this.progress = new RunProgress(total, chunks.length, { customers, chunks: done.length });
    this.reporter = startProgress(this.progress, this.observe?.progress, this.log);
  }

  chunkDone(scored: number, rejected: number): void {
    this.scored += scored;
    this.rejected += rejected;
    this.progress?.chunkDone(scored + rejected);
    this.reporter?.update();
  }

  /** The run waits for an unreachable database since `since` (Date.now()), or no longer (undefined): progress says so instead of an ETA. */
  waiting(since: number | undefined): void {
    if (!this.progress) return;
    this.progress.waitingSince = since;
    this.reporter?.update();
  }

  /** Clears the live line (before the summary is printed) and stops the progress log lines. */
  stopProgress(): void {
    this.reporter?.stop();
  }

  /**
   * Writes the metrics file, if asked; rows default to what this process counted. `features` gives the
   * run features' gauges (read from the ledger only when a file or Pushgateway is asked for; a failure to read
   * them leaves them out, never the run's own).
   */
  async finished(
    outcome: Pick<RunMetrics, 'model' | 'status' | 'errorKind' | 'published' | 'dryRun' | 'psi'> & {
      runId: string;
      rowsScored?: number;
      rowsRejected?: number;
    },
    lastSuccess: () => Promise<Date | null>,
    features?: () => Promise<MetricFamily[]>,
  ): Promise<void> {
    this.stopProgress();
    const wanted = this.observe?.metricsFile !== undefined || this.observe?.metricsPush !== undefined;
    const featureGauges = wanted && features ? await features().catch((err: unknown) => this.featureMetricsLost(err)) : [];
    await exportRunMetrics(
      { file: this.observe?.metricsFile, push: this.observe?.metricsPush },
      {
        ...outcome,
        forced: false,
        durationMs: performance.now() - this.started,
        rowsScored: outcome.rowsScored ?? this.scored,
        rowsRejected: outcome.rowsRejected ?? this.rejected,
        rowsScoredNow: this.scored - this.scoredBefore,
        features: featureGauges,
      },
      lastSuccess,
      this.log,
    );
  }

  private featureMetricsLost(err: unknown): MetricFamily[] {
    this.log.warn({ err: (err as Error).message }, `the run features' metrics were left out of the export: ${(err as Error).message}`);
    return [];
  }
}
