import type { KeyBound, KeyType } from '../keyColumn.js';
import type { RunStatistics } from '../stats/runStats.js';
import type { ScoreStats } from '../stats/scoreStats.js';
import type { FeatureDriftSummary } from '../stats/featurePsi.js';

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';
/** Why a run failed, for people and for filters: data, model, database, gate, interrupted, internal. */
export type ErrorKind = 'data' | 'model' | 'database' | 'gate' | 'interrupted' | 'internal' | 'input_check';

/** The parameters a run was started with; a resume continues with exactly these. */
export interface RunParams {
  modelDir: string;
  /** Started with `--replace-promoted` over this sibling run (published by hand): its resumes may replace that run too. */
  replacesPromotedRunId?: string;
  chunkSize: number;
  dryRun: boolean;
  keepRuns: number;
  maxRejectRatio: number;
  /** The PSI gate (`--max-psi`); null or absent: none. */
  maxPsi?: number | null;
  /** The realised-AUC gate (`--min-auc`, src/features/outcomes); absent: none. */
  minAuc?: number;
  chunkAttempts: number;
  backendChoice: string;
  /** keyType: absent for int8 keys (src/keyColumn.ts). */
  source: { table: string; key: string; keyType?: KeyType | undefined };
  /** `--skip-check NAME --reason TEXT`: input checks skipped for this run and its resumes (src/features/input-checks). */
  skipChecks?: { name: string; reason: string }[];
  /** `--on-publish-command`; null or absent: none. */
  onPublishCommand?: string | null;
  /**
   * `--workers`: the run's chunks are claimed (src/ledger/chunkClaims.ts) by this many local workers, and
   * `scorejob work` may join it from anywhere. Absent: one process scores the chunks in order, as before.
   */
  workers?: number;
  /** How long a worker's claim on a chunk lasts without renewal (`--chunk-lease`), seconds. */
  chunkLeaseS?: number;
  /** `--reasons K` (src/model/explainer.ts): K, the features the stored indexes name, the unit, the method; absent: none. */
  reasons?: RunReasons | null;
  /** `--only-new` (src/features/only-new/onlyNew.ts): the base run and the source the view filters; absent: a full run. */
  onlyNew?: OnlyNewParams | null;
  /** The model's baseline.json (src/features/feature-drift): its sha256 and the `--max-feature-psi` gate; absent: no feature drift. */
  featureDrift?: { baselineSha256: string; maxFeaturePsi: number | null } | null;
  /** The manifest's `segments` (src/features/segments): each column's values as the run found them, and the `--max-segment-psi` gate; absent: none. */
  segments?: { columns: { column: string; values: string[] }[]; maxSegmentPsi: number | null } | null;
  /** On a sibling run's own params: the run whose chunks write its scores. */
  championRunId?: string | null;
  // A feature that scores a sibling run stores the sibling's model and run id on the run it is part of, under
  // the sibling's kind (score_runs.kind): it declares that key on RunParams in its own folder (src/features/).
}

/** What an only_new run rescores and carries (params.onlyNew); `source` of the run is then the filtering view. */
export interface OnlyNewParams {
  baseRunId: string;
  /** When the base run started (ISO): rows whose updated column is later are rescored. */
  since: string;
  /** The manifest's source table, which the view filters and the carry-forward joins. */
  sourceTable: string;
  updatedColumn: string | null;
}

/** What a run's reasons are (params.reasons; the view customer_score_reasons reads `features` and `space`). */
export interface RunReasons {
  k: number;
  features: string[];
  space: 'logit' | 'score';
  method: string;
}

export interface RunRow {
  run_id: string;
  status: RunStatus;
  trigger: string;
  dry_run: boolean;
  model_name: string;
  model_version: string;
  model_sha256: string;
  backend: string;
  params: RunParams;
  started_at: Date;
  finished_at: Date | null;
  heartbeat_at: Date;
  published_at: Date | null;
  tick_at: Date | null;
  chunks_total: number | null;
  rows_scored: string;
  rows_rejected: string;
  error: string | null;
  error_kind: ErrorKind | null;
  stats: RunStats | null;
  host: string;
  pid: number;
  resumes: number;
  /** Failures before the resumes, oldest first (sql/005_run_failures.sql). */
  failures: RunFailure[];
}

/** A failure of a run that was then resumed. */
export interface RunFailure {
  at: string;
  status: 'failed' | 'interrupted';
  kind: ErrorKind | null;
  error: string | null;
}

export interface ChunkRow {
  chunk_no: number;
  /** null: no lower bound (the first chunk). */
  key_lo: string | null;
  /** null: no upper bound (the last chunk). */
  key_hi: string | null;
  status: 'pending' | 'done';
  attempts: number;
  rows_scored: number | null;
  rows_rejected: number | null;
  duration_ms: number | null;
  last_error: string | null;
  stats: ScoreStats | null;
  /** The worker that claimed it last (shared runs, sql/009_chunk_claims.sql); null otherwise. */
  claim_host?: string | null;
  claim_pid?: number | null;
  /** A shared run's chunk that failed for good on some worker (it failed the run; a resume clears it). */
  failed?: boolean;
}

/** A planned chunk: keys in (lo, hi]; a null bound is no bound (the first chunk is open below, the last above). */
export interface PlannedChunk {
  chunkNo: number;
  /** int8 keys: a bigint; uuid and text keys: the key as the database writes it (src/keyColumn.ts). */
  lo: KeyBound;
  hi: KeyBound;
  /** The rows it holds in the snapshot it is read in (score_chunks.rows_planned); undefined: not known. */
  rows?: number | undefined;
}

export interface NewRun {
  trigger: string;
  dryRun: boolean;
  modelName: string;
  modelVersion: string;
  modelSha256: string;
  backend: string;
  params: RunParams;
  tickAt?: Date | undefined;
  host: string;
  pid: number;
}

/**
 * A run's statistics JSON (`score_runs.stats`): what computeRunStatistics produced (src/publish/runStatistics.ts)
 * and the stage timings, stored before the gates; `forced_publish` once a person published it over a
 * gate. Every part may be missing: runs that failed early, or predate a part, have less.
 */
export interface RunStats extends Partial<RunStatistics> {
  timings_ms?: Record<string, number>;
  forced_publish?: ForcedPublish;
  // How the model of a sibling run scored beside this one: its feature declares its key on RunStats (src/features/).
  /** Each feature's PSI against the model's baseline and the previous published run (src/features/feature-drift). */
  feature_drift?: FeatureDriftSummary;
  /** The segments that moved most against the previous published run (src/features/segments). */
  segments?: SegmentDriftSummary;
}

/** `score_runs.stats.segments`: how many segments the run counted, and the top movers (every one is in run_segments). */
export interface SegmentDriftSummary {
  previous_run_id: string | null;
  segments: number;
  top: SegmentMover[];
}

export interface SegmentMover {
  segment: string;
  /** The value as text; null for the rows where the column is NULL and for the values not known when the run started. */
  value: string | null;
  value_kind: 'value' | 'null' | 'other';
  rows_scored: number;
  share: number;
  previous_share: number | null;
  mean_score: number | null;
  psi_previous: number | null;
}

/** A run made as part of another (scored beside it, in its chunks), as its ledger row holds it. */
export interface SiblingRun {
  run_id: string;
  status: string;
  model_version: string;
  published_at: Date | null;
}

/** How a sibling run's model scored beside the run's, over the customers both scored (stored in the run's stats). */
export interface SiblingComparison {
  /** The sibling run. */
  run_id: string;
  model_name: string;
  model_version: string;
  /** Customers both models scored (the others were rejected by one of them). */
  customers: number;
  /** Pearson's r of the two scores; null with fewer than two customers or a constant score. */
  correlation: number | null;
  /** PSI of the sibling's scores against the run's over the run's deciles (its percentile cut points 10, 20, …, 90). */
  psi: number | null;
  /** |top decile by the run ∩ top decile by the sibling| / |top decile by the run|: each its percentiles 91–100. */
  top_decile_overlap: number | null;
  /** Customers whose band would change were the sibling published; null when the run's manifest has no bands. */
  band_changes: number | null;
}

/** Recorded on the run (`score_runs.stats.forced_publish`) when a person publishes it over a failed gate. */
export interface ForcedPublish {
  at: string;
  by: string;
  host: string;
  pid: number;
  /** The gate's complaint that was overridden. */
  overridden_error: string | null;
  /** Why, in the words of the person who forced it (`--reason`); absent on runs forced before it was required. */
  reason?: string | undefined;
}

/** The run readers saw when a run was scored (see RunHistory.previousPublishedRun): the baseline of its drift and of `runs show`. */
export type PreviousRun = Pick<RunRow, 'run_id' | 'model_version' | 'rows_scored' | 'stats'>;

/** A run as `scorejob runs` lists it: the run's columns and what is derived from the other runs and tables. */
export type RunListRow = Pick<
  RunRow,
  | 'run_id'
  | 'status'
  | 'trigger'
  | 'dry_run'
  | 'model_name'
  | 'model_version'
  | 'backend'
  | 'rows_scored'
  | 'rows_rejected'
  | 'chunks_total'
  | 'started_at'
  | 'finished_at'
  | 'heartbeat_at'
  | 'error'
  | 'error_kind'
  | 'published_at'
> & {
  chunks_done: number;
  /** A later run was published: neither resume nor publish --force accepts this run any more. */
  superseded: boolean;
  /** The run's scores table is still there (or the run never planned): retention did not drop it. */
  resumable_scores: boolean;
  /** A sibling run (a feature's second model, scored in the same pass): the run it was scored beside; null otherwise. */
  champion_run_id?: string | null;
  /** full, only_new, or the kind a feature gives its sibling runs (score_runs.kind). */
  kind: string;
  /** only_new runs: the scores carried from earlier runs. */
  rows_carried: string | number;
  /** The manifest name of the model that scored the run (a sibling run's own; model_name is the slot it fills). */
  manifest_name: string;
};

/** A run's rejects counted by reason and column (`runs show`). */
export interface RejectCount {
  reason: string;
  column: string | null;
  rows: number;
}

/** What the due check needs of a ledger row. */
export interface TickRun {
  run_id: string;
  status: RunStatus;
  trigger: string;
  dry_run: boolean;
  started_at: Date;
  tick_at: Date | null;
  host: string;
  pid: number;
  /** Why it failed (`gate`: a publish gate stopped it, it waits for a person). */
  error_kind: ErrorKind | null;
  /** When a tick first said that this gate-stopped run waits for a person (once per run). */
  waiting_announced_at: Date | null;
}

/** A run's score table as retention sees it (src/ledger/retention.ts applyRetention). */
export interface RunTableRow {
  run_id: string;
  published: boolean;
  attached: boolean;
  /** A DETACH … CONCURRENTLY that did not finish. */
  pending: boolean;
  /** The run the published-run pointer names. */
  is_pointer: boolean;
  /** A later run of the model was published. */
  superseded: boolean;
  /** A sibling run (sql/011): the run it was scored beside; null for any other run. */
  champion_run_id: string | null;
}
