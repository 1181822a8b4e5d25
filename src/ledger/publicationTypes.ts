/** The ledger's publication records as the code reads them (score_publications, published_runs). */

/**
 * How a model's pointer moved: a run published, a run published by force over a gate, a rollback, or the
 * model retired (`model retire`: no pointer left); or a feature's publish of a sibling run, under the kind
 * the feature declares in its own folder (a key of SiblingPublicationKinds).
 */
export type PublicationKind = 'publish' | 'force' | 'rollback' | 'retire' | keyof SiblingPublicationKinds;

/** The publication kinds features add (score_publications.kind): each feature declares its key here from its folder. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface SiblingPublicationKinds {}

/** Who moved the pointer and why (score_publications; the database role is recorded by the server). */
export interface PublishedBy {
  osUser: string;
  host: string;
  pid: number;
  reason?: string | undefined;
  /** Made with `--force` past a gate (`reason` then says why). */
  forced?: boolean | undefined;
}

/** The `scorejob_published` notification's payload (docs/downstream.md). */
export interface PublishedEvent {
  schema: string;
  model_name: string;
  model_version: string;
  run_id: string;
  previous_run_id: string | null;
  rows: number;
  published_at: string;
  kind: Exclude<PublicationKind, 'retire'>;
  rollback: boolean;
}

/**
 * The `scorejob_published` payload of a retire: the fields of a publication, saying that customer_scores
 * shows no run of the model now (run_id null, rows 0); previous_run_id is the run taken out.
 */
export interface RetiredEvent extends Omit<PublishedEvent, 'run_id' | 'previous_run_id' | 'kind'> {
  run_id: null;
  previous_run_id: string;
  kind: 'retire';
}

/** A model's latest publication (score_publications). */
export interface LastPublication {
  run_id: string;
  kind: PublicationKind;
  published_at: Date;
  by: string;
}

/** The channel a listener LISTENs on; one notification per publish, rollback and retire. */
export const publishedChannel = 'scorejob_published';

/** A run as a rollback target: what the refusals need to know. */
export interface RollbackCandidate {
  run_id: string;
  model_name: string;
  model_version: string;
  status: string;
  dry_run: boolean;
  published_at: Date | null;
  rows_scored: string;
  /** Its scores are still attached to score_data (retention did not drop them). */
  kept: boolean;
}

/** The manifest's bands as stored on a run: names[i] for bounds[i-1] <= score < bounds[i]. */
export interface RunBands {
  bounds: number[];
  names: string[];
}

/**
 * The SQL on score_publications, published_run's pointer moves, and the run's percentile cut points and
 * bands (sql/007_downstream.sql). Values go as parameters; the schema enters through the Ledger's quoting.
 */
/** A publication that left fewer customers with reasons than the one it replaced (published_runs.fewer_reasons). */
export interface FewerReasons {
  now: number;
  before: number;
  /** The run readers saw before, with more reasons. */
  fromRunId: string;
}

/** A sibling run that customer_scores shows for the model of the run it is part of (Publications.currentPromotion). */
export interface Promotion {
  run_id: string;
  champion_run_id: string;
  /** The sibling run's kind (score_runs.kind), as its feature named it: how the run is spoken of. */
  kind: string;
  /** The sibling's manifest name (the run's model_name is that of the run it is part of: the slot it fills). */
  manifest_name: string;
  model_version: string;
  model_sha256: string;
  /** The sibling's model directory as the run that scored it recorded it. */
  model_dir: string;
  published_at: Date;
  by: string;
}

/** One row of score_publications, as `scorejob runs` shows it. */
export interface PublicationRow {
  run_id: string;
  kind: PublicationKind;
  from_run_id: string | null;
  published_at: Date;
  by: string;
  reason: string | null;
  forced: boolean;
}
