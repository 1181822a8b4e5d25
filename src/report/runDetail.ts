import type { FeatureDriftSummary } from '../stats/featurePsi.js';
import type { SegmentDriftSummary } from '../ledger/types.js';
import type { ForcedPublish, RejectCount, RunFailure, RunStatus } from '../ledger/ledger.js';
import type { PublicationKind } from '../ledger/publications.js';
import type { ScoreSummary } from '../stats/scoreStats.js';
import type { FeaturesSummary } from '../stats/featureStats.js';
import type { Drift } from '../stats/psi.js';
import type { AnalystFacts } from './analystFacts.js';
import type { PerformanceFacts } from './performanceReport.js';

/** score_runs.kind as `runs` shows it: its stored value with `-` for `_` (only_new is shown as only-new). */
export type RunKindLabel = string;

/** score_runs.kind as `runs` shows it (the ledger's CHECK constraint names the kinds; the report knows none but only_new's spelling). */
export function runKindLabel(kind: string): RunKindLabel {
  return kind.replaceAll('_', '-');
}

/** One line of `scorejob runs`. */
export interface RunListItem {
  run_id: string;
  status: RunStatus;
  trigger: string;
  dry_run: boolean;
  published: boolean;
  /** The manifest name of the model that scored the run (a sibling run's own model; `slot` is the model it may replace). */
  model: string;
  model_version: string;
  /** The model whose customer_scores the run fills (score_runs.model_name): for a sibling run, the model of the run it was scored beside. */
  slot: string;
  /** score_runs.kind as shown: full, only-new, or the kind a run feature gives its sibling runs (src/features/). */
  kind: RunKindLabel;
  backend: string;
  /** Customers the run itself scored. */
  rows_scored: number;
  /** only-new: scores carried from earlier runs; 0 otherwise. */
  rows_carried: number;
  /** What customer_scores shows while the run is current: scored + carried. */
  rows_published: number;
  rows_rejected: number;
  chunks_done: number;
  chunks_total: number | null;
  started_at: string;
  finished_at: string | null;
  duration_s: number | null;
  error: string | null;
  error_kind: string | null;
  /** The command that continues it, when it can be continued. */
  resume_command: string | null;
  /** A sibling run (a run feature's second model, scored in the same pass): the run it was scored beside; absent otherwise. */
  champion_run_id?: string;
  /** customer_scores shows this run now (its model's pointer names it). */
  current?: boolean;
  /** Every time the run was made current, oldest first: published, published by force, put back by a rollback. */
  publications?: PublicationInfo[];
}

/** One move of a model's pointer to a run (score_publications). */
export interface PublicationInfo {
  kind: PublicationKind;
  at: string;
  by: string;
  /** The run readers saw before. */
  from_run_id: string | null;
  reason: string | null;
  /** Made with `--force` past a gate (`reason` says why). */
  forced: boolean;
}

/** `scorejob runs show`: a run, its chunks, its rejects by reason, its statistics, and the previous published run. */
export interface RunDetail extends RunListItem {
  host: string;
  pid: number;
  resumes: number;
  /**
   * Every failure of the run, oldest first, with its time: those before each resume, then the current
   * one if the run is failed or interrupted now.
   */
  failures: RunFailure[];
  model_sha256: string;
  params: unknown;
  tick_at: string | null;
  published_at: string | null;
  rejects_by_reason: RejectCount[];
  chunks: {
    chunk_no: number;
    key_lo: string | null;
    key_hi: string | null;
    status: string;
    attempts: number;
    rows_scored: number | null;
    rows_rejected: number | null;
    duration_ms: number | null;
    last_error: string | null;
    claim_host?: string | null;
    claim_pid?: number | null;
    failed?: boolean;
  }[];
  stats: ScoreSummary | null;
  timings_ms: Record<string, number> | null;
  previous_published: { run_id: string; model_version: string; rows_scored: number; stats: ScoreSummary | null; features?: FeaturesSummary | null } | null;
  /** Per-feature NULL, out-of-range and unknown-category fractions over every row read. */
  features?: FeaturesSummary | null;
  /** PSI against the previous published run: as recorded by the run, else computed from the two histograms. */
  drift?: Drift | null;
  /** Set when `scorejob publish --force` published the run over a failed gate. */
  forced_publish?: ForcedPublish | null;
  /** The run's kind (full, only_new: base run and carried scores) and its reasons (src/report/analystFacts.ts). */
  analyst?: AnalystFacts;
  /** Realised and estimated performance once `scorejob outcomes sync` saw the run. */
  outcomes?: PerformanceFacts | undefined;
  /** Each feature's PSI against the model's baseline and the previous published run, the top movers first. */
  feature_drift?: FeatureDriftSummary | null;
  /** The segments (manifest `segments`) that moved most against the previous published run. */
  segments?: SegmentDriftSummary | null;
  /** What each run feature read for its part of the report (src/report/featureReport.ts), by feature name. */
  reports?: Record<string, unknown>;
}
