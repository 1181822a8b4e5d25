import type pg from 'pg';
import type { Config } from '../config.js';
import type { StopSignal } from '../chunks/chunkLoop.js';
import type { RunFeature, RunScope } from '../features/index.js';
import type { PlannedChunk, RunParams, RunStats } from '../ledger/ledger.js';
import type { ChunkRow } from '../ledger/types.js';
import type { ObserveDeps } from '../observe/observer.js';
import type { ScoreSummary } from '../stats/scoreStats.js';
import type { SourceView } from './sourceView.js';

/** What a finished run reports: the summary line's facts. */
export interface RunResult {
  runId: string;
  status: 'succeeded';
  dryRun: boolean;
  published: boolean;
  /** The run's totals (a resumed run: with the chunks done before). */
  rowsScored: number;
  rowsRejected: number;
  /** What this invocation scored and rejected (a resume: only the chunks it did). */
  rowsScoredNow: number;
  rowsRejectedNow: number;
  durationMs: number;
  /** This invocation's rows scored per second of its duration (a shared run: by every worker). */
  rowsPerSecond: number;
  /** A shared run (`--workers N`): the workers, and the rows this process scored itself (`rowsScoredNow` counts every worker's). */
  workers?: { count: number; scoredHere: number; rejectedHere: number };
  backend: string;
  modelName: string;
  modelVersion: string;
  stats: ScoreSummary;
  /** PSI of the scores against the previous published run (`psiBaselineRunId`); null without one. */
  psi: number | null;
  psiBaselineRunId: string | null;
  timings: Record<string, number>;
  /** Runs whose history retention dropped. */
  droppedRuns: string[];
  /** --only-new: the scores carried forward from `baseRunId` (absent on a full run). */
  carried?: { rows: number; baseRunId: string };
}

/** The run's session and spec as its phases use them; its features see it as their RunScope. */
export interface ExecuteDeps extends RunScope {
  readonly client: pg.PoolClient;
  config: Config;
  recover(): Promise<void>;
  stop: StopSignal;
  params: Readonly<RunParams>;
  /** The run's features, in registration order (src/features/index.ts). */
  features: readonly RunFeature[];
  /** Progress line / log lines and the metrics file (the CLI's choices); none when absent. */
  observe?: ObserveDeps | undefined;
  /** `--outage-budget`, ms: how long the chunks and the ledger wait for an unreachable database; default 60 s. */
  outageBudgetMs?: number | undefined;
  /** How old the attach must be before publishing, ms (src/publish/publish.ts); default there. */
  publishSettleMs?: number | undefined;
}

/** Where the run is, for the ledger's words when it fails and for what its failure must still record. */
export interface RunProgress {
  /** planning, chunk N, statistics, publish. */
  stage: string;
  scoredNow: number;
  rejectedNow: number;
  /** The run's total once its chunks are done: with none scored, no advice may be to publish. */
  scoredTotal?: number | undefined;
  /** The chunk whose failure failed the run (its key range goes into the advice). */
  failedChunk?: PlannedChunk | undefined;
  /** Stored on the run before the gates, so a run a gate stopped can be inspected (`runs show`). */
  runStats?: RunStats | undefined;
  /** The run table's ANALYZE, running beside the statistics (analyzeEarly.ts). */
  analyzing?: Promise<void> | undefined;
  view?: SourceView | undefined;
}

/** The run's chunks once planned: all of them, and those left to score. */
export interface PlannedRun {
  chunks: readonly ChunkRow[];
  pending: readonly PlannedChunk[];
  /** The source's row count when it planned now. */
  sourceRows: number | undefined;
  view: SourceView;
}

/** The run's totals once every chunk is done, as the ledger has them. */
export interface ChunkTotals {
  scored: number;
  rejected: number;
  chunks: readonly ChunkRow[];
  /** Scores the run publishes without scoring them (carried from an earlier run, carriedOf): counted in gates and ranks. */
  carried: { rows: number; baseRunId: string } | undefined;
}

/** Scores the run publishes without scoring them (carried from an earlier run), from its features. */
export function carriedOf(features: readonly RunFeature[]): { rows: number; baseRunId: string } | undefined {
  for (const f of features) {
    const c = f.carried?.();
    if (c) return c;
  }
  return undefined;
}
