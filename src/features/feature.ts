import type pg from 'pg';
import type { ColumnSpec } from '../columns.js';
import type { BackendChoice, Config, RunOptions } from '../config.js';
import type { ChunkSidecar, Transform } from '../chunks/chunkLoop.js';
import type { Ledger, PlannedChunk, RunParams, RunRow, RunStats } from '../ledger/ledger.js';
import type { ErrorKind } from '../ledger/types.js';
import type { Logger } from '../log.js';
import type { DefaultedSetting, Setting } from '../setting.js';
import type { LoadedModel } from '../model/load.js';
import type { StageTimings } from '../observe/timings.js';
import type { ScoreHistogram } from '../stats/scoreCuts.js';
import type { RunStatistics } from '../stats/runStats.js';

/** The run as its features see it: what every hook may use. */
export interface RunScope {
  readonly pool: pg.Pool;
  /** The ledger connection (a getter: a lost one is replaced, and later writes must use the new one). */
  readonly client: pg.ClientBase;
  readonly ledger: Ledger;
  readonly runId: string;
  readonly params: Readonly<RunParams>;
  /** The run's own (champion) model. */
  readonly model: LoadedModel;
  readonly log: Logger;
  readonly timings: StageTimings;
  /** Checked in a writing transaction just before COMMIT: the run lock is still ours. */
  fence(c: pg.ClientBase): Promise<void>;
}

/** How each chunk is read and what is written beside its scores; each feature may wrap it in turn. */
export interface ChunkRead {
  readonly columns: readonly ColumnSpec[];
  readonly transform: Transform;
  readonly sidecar: ChunkSidecar | undefined;
}

/** The run being created, as the transaction that creates it knows it. */
export interface RunCreation {
  readonly ledger: Ledger;
  readonly runId: string;
  readonly params: Readonly<RunParams>;
  readonly modelName: string;
  readonly trigger: string;
  readonly tickAt?: Date | undefined;
  readonly host: string;
  readonly pid: number;
}

/** Where a chunk loop runs: the coordinator (its scores counted into the run's histogram) or a joined worker. */
export interface ChunkReadScope {
  readonly ledger: Ledger;
  readonly runId: string;
  readonly model: LoadedModel;
  readonly role: 'run' | 'worker';
}

/** A run's outcome as its features are told it: before the publish (succeeded), or once it failed. */
export interface RunOutcome {
  status: 'succeeded' | 'failed' | 'interrupted';
  error?: string | undefined;
  errorKind?: ErrorKind | undefined;
}

/** Statistics time: the run's statistics (read) and the stats stored on the run (a feature may add its part). */
export interface StatisticsScope extends RunScope {
  readonly statistics: RunStatistics;
  readonly stats: RunStats;
}

/**
 * A run feature (one folder of src/features/): narrow, optional hooks that the run calls at
 * fixed points, in registration order (src/features/index.ts), instead of branching on the feature.
 * One instance per run per process; it keeps its own state (a loaded model, a count) on itself.
 */
export interface RunFeature {
  readonly name: string;
  /** Log fields and words of the "run started" and "joined run" lines. */
  describe?(): { fields?: Record<string, unknown>; words?: string };
  /** Under the run lock, before anything is written: refuse (UsageError, exit 2) what cannot work. */
  check?(client: pg.ClientBase): Promise<void>;
  /** Under the run lock, before the run row exists: its part of the run specification, stored in params. */
  spec?(client: pg.ClientBase, ledger: Ledger): Promise<Partial<RunParams>>;
  /** In the transaction that creates the run: rows of its own beside the run's (both exist, or neither). */
  created?(c: pg.ClientBase, run: RunCreation): Promise<void>;
  /** `resume`, before the run is reopened: refuse (NotResumableError) a run whose storage is gone. */
  resumable?(client: pg.ClientBase, ledger: Ledger, run: RunRow): Promise<void>;
  /** In the transaction that reopens the run for a resume. */
  reopened?(c: pg.ClientBase, run: { ledger: Ledger; runId: string; host: string; pid: number }): Promise<void>;
  /** After a resume reopened the run, before it goes on: what the run reads is made again (a view). */
  resumed?(scope: RunScope): Promise<void>;
  /** Before the run plans (once per run; a resume finds it done): e.g. freezing the rows it rescores. */
  beforePlan?(scope: RunScope): Promise<void>;
  /** An empty source may still be a run worth publishing (every score carried from an earlier run). */
  readonly allowsEmptySource?: boolean;
  /** In the run's snapshot, while the run plans its chunks, before the plan is recorded (a resume of a planned run skips it): checks that can refuse the run. */
  planning?(scope: RunScope, snapshotId: string): Promise<void>;
  /** In the plan's transaction: rows of its own per chunk. */
  planned?(c: pg.ClientBase, scope: RunScope, chunks: readonly (PlannedChunk & { rows: number })[]): Promise<void>;
  /** Before the first chunk is scored: tables of its own (created, attached while empty). */
  prepareStorage?(scope: RunScope): Promise<void>;
  /** The chunk loop's read, wrapped: more columns, the transform over its own, a sidecar written with each chunk. */
  chunkRead?(read: ChunkRead, scope: ChunkReadScope): ChunkRead;
  /** Every chunk of the run is done in the ledger. */
  chunksDone?(scope: RunScope): Promise<void>;
  /** Scores the run publishes without scoring them (carried from an earlier run): counted in gates and ranks. */
  carried?(): { rows: number; baseRunId: string } | undefined;
  /** The run's percentile histogram, complete, once its cut points are recorded (not for a dry run). */
  ranked?(scope: RunScope, histogram: ScoreHistogram): Promise<void>;
  /** After the run's statistics, before its gates: adds its part to `scope.stats`. */
  statistics?(scope: StatisticsScope): Promise<void>;
  /** The run's outcome: succeeded just before it publishes (or, dry, drops its scores), or failed. */
  finished?(scope: RunScope, outcome: RunOutcome): Promise<void>;
  /** After the publish committed. */
  published?(scope: RunScope): Promise<void>;
  /** The run is over, however it ended; the session is still open (best effort). */
  ended?(scope: RunScope): Promise<void>;
  /** Frees what the feature holds (a model's backend memory); after the session closed. */
  dispose?(): void;
}

/** What a worker joining a shared run knows when it makes the run's features. */
export interface JoinScope {
  readonly run: RunRow;
  readonly model: LoadedModel;
  readonly ledger: Ledger;
  /** A connection for look-ups before the work starts. */
  readonly lookup: pg.Pool;
  readonly backend: BackendChoice;
  /** Model directories given on this worker's command line, by feature name (the run's own are recorded on it). */
  readonly modelDirs: Readonly<Record<string, string | undefined>>;
}

/**
 * A feature's registration (src/features/index.ts): how it makes the instance for a run being started,
 * resumed or joined. Each returns undefined when the run does not use it. Called before anything is
 * written: a refusal is a UsageError (exit 2), and a feature frees what it loaded when it refuses.
 */
/** What `scorejob run` was started with besides its options: where it logs and exports its metrics. */
export interface StartEnv {
  readonly config: Config;
  readonly log: Logger;
  readonly observe?: { readonly metricsFile?: string | undefined; readonly metricsPush?: string | undefined } | undefined;
}

export interface RunFeatureDefinition {
  readonly name: string;
  /** `scorejob run`: from the person's options. */
  forStart?(opts: Readonly<RunOptions>, model: LoadedModel, env: StartEnv): Promise<RunFeature | undefined> | RunFeature | undefined;
  /** `scorejob resume`: from the params the run was started with. */
  forResume?(params: Readonly<RunParams>, model: LoadedModel, runId: string): Promise<RunFeature | undefined> | RunFeature | undefined;
  /** `scorejob work`: from the joined run's params. */
  forWorker?(join: JoinScope): Promise<RunFeature | undefined> | RunFeature | undefined;
  /** A run this feature made as part of another (resume, join or publish through that one instead): the words that say so. */
  partOf?(run: { runId: string; params: Readonly<RunParams> }, command: 'resume' | 'work' | 'publish'): string | undefined;
}

/**
 * A feature's own options of the CLI (src/features/settings.ts), declared in its folder: the CLI adds them
 * to its commands and hands their values on without knowing the feature.
 */
export interface FeatureCli {
  readonly name: string;
  /** A setting of `run` (and of `schedule`, which passes it on when its `forward` says so), and what its value sets in the run's options. */
  readonly run?: { readonly setting: Setting<string>; options(value: string | undefined): Partial<RunOptions> };
  /** A setting of `work`: a model directory of the feature's on this worker's machine, handed on by the feature's name (JoinScope.modelDirs). */
  readonly work?: { readonly setting: Setting<string> };
  /** A variant of `publish <run>` under a flag of its own: the feature's part of the run is published instead of the run. */
  readonly publish?: FeaturePublish;
}

/** A feature's variant of `publish <run>` (src/cli/publish.ts). */
export interface FeaturePublish {
  /** The flag that selects it (boolean). */
  readonly flag: { readonly flags: string; readonly description: string };
  /** Its words in the command's description, after the run's own ("or, with --flag, ..."). */
  readonly says: string;
  /** Settings of `publish` for this variant alone: one given without the flag is refused (it would be ignored). */
  readonly settings: readonly DefaultedSetting<unknown>[];
  /** Publishes and says so; it imports what it needs when called. `read` gives one of `settings`, checked. */
  publish(ctx: { config: Config; log: Logger }, runId: string, opts: FeaturePublishOptions): Promise<void>;
}

/** What `publish <run>` hands a feature's variant. */
export interface FeaturePublishOptions {
  onPublishCommand: string | undefined;
  force: boolean;
  reason: string | undefined;
  read<T>(setting: DefaultedSetting<T>): T;
}
