import type pg from 'pg';
import type { FeatureDriftSummary } from '../stats/featurePsi.js';
import { UsageError } from '../errors.js';
import { Ledger, type ForcedPublish, type RejectCount, type RunFailure, type RunListRow, type RunRow, type RunStatus } from '../ledger/ledger.js';
import type { SegmentDriftSummary } from '../ledger/types.js';
import type { ScoreSummary } from '../stats/scoreStats.js';
import type { FeaturesSummary } from '../stats/featureStats.js';
import { drift as computeDrift, type Drift } from '../stats/psi.js';
import { type PublicationKind } from '../ledger/publications.js';
import { analystFacts, type AnalystFacts } from './analystFacts.js';
import { readPerformance, type PerformanceFacts } from './performanceReport.js';

/** One line of `scorejob runs`. */
export interface RunListItem {
  run_id: string;
  status: RunStatus;
  trigger: string;
  dry_run: boolean;
  published: boolean;
  /** The manifest name of the model that scored the run (a challenger's own name; `slot` is the model it may replace). */
  model: string;
  model_version: string;
  /** The model whose customer_scores the run fills (score_runs.model_name): for a challenger, its champion's. */
  slot: string;
  /** full, only-new or challenger. */
  kind: 'full' | 'only-new' | 'challenger';
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
  /** A challenger's run (`run --challenger`): the run it was scored beside; absent otherwise. */
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
}

/**
 * Before reporting: runs still marked `running` that no live lock holder works on have died; mark
 * them interrupted so the report tells the truth. A live run (even one reconnecting) is left alone.
 */
async function settleDeadRuns(c: pg.ClientBase, ledger: Ledger): Promise<void> {
  await ledger.markDeadRuns(c);
}

/**
 * The next step `runs` offers for a run that did not succeed, true when followed (issue: advice that
 * cannot work): resume for a failure a resume can fix; for a run a gate stopped, a new run once the
 * data is fixed (a resume would find every chunk done and stop at the same gate), or `publish --force`
 * after review; a new run once a later publish superseded it or retention dropped its scores.
 */
function nextStep(r: RunListRow): string | null {
  if (r.status !== 'failed' && r.status !== 'interrupted') return null;
  // A challenger goes where its champion goes: resumed with it (never on its own), never published by force.
  if (r.champion_run_id) return r.error_kind === 'gate' || r.superseded || !r.resumable_scores ? null : `scorejob resume ${r.champion_run_id}`;
  if (r.superseded || !r.resumable_scores) return r.dry_run ? null : 'scorejob run (a new run: this one was superseded or its scores dropped)';
  // A run that scored no customer is never published, not even by force.
  if (r.error_kind === 'gate')
    return r.dry_run || Number(r.rows_scored) === 0
      ? 'scorejob run'
      : `scorejob run once the data is fixed, or scorejob publish ${r.run_id} --force --reason "<what you checked>" after review`;
  return `scorejob resume ${r.run_id}`;
}

function toItem(r: RunListRow): RunListItem {
  const end = r.finished_at ?? (r.status === 'running' ? new Date() : r.heartbeat_at);
  return {
    run_id: r.run_id,
    status: r.status,
    trigger: r.trigger,
    dry_run: r.dry_run,
    published: r.published_at !== null,
    model: r.manifest_name,
    model_version: r.model_version,
    slot: r.model_name,
    kind: r.kind === 'only_new' ? 'only-new' : r.kind === 'challenger' ? 'challenger' : 'full',
    backend: r.backend,
    rows_scored: Number(r.rows_scored),
    rows_carried: Number(r.rows_carried),
    rows_published: Number(r.rows_scored) + Number(r.rows_carried),
    rows_rejected: Number(r.rows_rejected),
    chunks_done: r.chunks_done,
    chunks_total: r.chunks_total,
    started_at: r.started_at.toISOString(),
    finished_at: r.finished_at?.toISOString() ?? null,
    duration_s: Math.round((end.getTime() - r.started_at.getTime()) / 100) / 10,
    error: r.error,
    error_kind: r.error_kind,
    resume_command: nextStep(r),
    ...(r.champion_run_id ? { champion_run_id: r.champion_run_id } : {}),
  };
}

export async function listRuns(
  c: pg.ClientBase,
  schema: string,
  opts: { limit: number; status?: string | undefined; modelName?: string | undefined },
): Promise<RunListItem[]> {
  const ledger = new Ledger(schema);
  await settleDeadRuns(c, ledger);
  return withPublications(c, ledger, (await ledger.listRuns(c, opts)).map(toItem));
}

/** Adds each run's publications (and whether it is current) to the items. */
async function withPublications<T extends RunListItem>(c: pg.ClientBase, ledger: Ledger, items: T[]): Promise<T[]> {
  const publications = ledger.publications;
  const rows = await publications.forRuns(
    c,
    items.map((i) => i.run_id),
  );
  const current = new Set(await publications.currentRuns(c));
  for (const item of items) {
    item.current = current.has(item.run_id);
    item.publications = rows
      .filter((p) => p.run_id === item.run_id)
      .map((p) => ({ kind: p.kind, at: p.published_at.toISOString(), by: p.by, from_run_id: p.from_run_id, reason: p.reason, forced: p.forced }));
  }
  return items;
}

export async function showRun(c: pg.ClientBase, schema: string, runId: string): Promise<RunDetail> {
  if (!/^\d{1,18}$/.test(runId)) throw new UsageError(`run id "${runId}" is not a run number (see \`scorejob runs\`)`);
  const ledger = new Ledger(schema);
  await settleDeadRuns(c, ledger);
  const run = await ledger.listedRun(c, runId);
  if (!run) throw new UsageError(`there is no run ${runId} (see \`scorejob runs\`)`);
  const rejects = await ledger.rejectsByReason(c, runId);
  const chunks = await ledger.getChunks(c, runId);
  const stats = run.stats;
  // The baseline the run's drift was computed against, when it has one on record; else who readers see now.
  const recorded = stats?.drift?.baseline_run_id;
  const p = recorded === undefined ? await ledger.previousPublishedRun(c, runId) : recorded === null ? undefined : await ledger.getRun(c, recorded);
  const prevStats = p?.stats ?? null;
  const drift = stats?.drift ?? (stats?.scores && p ? computeDrift(p.run_id, prevStats?.scores?.histogram, stats.scores.histogram) : null);
  const [item] = await withPublications(c, ledger, [toItem(run)]);
  return {
    ...(item as RunListItem),
    host: run.host,
    pid: run.pid,
    resumes: run.resumes,
    failures: failureHistory(run),
    model_sha256: run.model_sha256,
    params: run.params,
    tick_at: run.tick_at?.toISOString() ?? null,
    published_at: run.published_at?.toISOString() ?? null,
    rejects_by_reason: rejects,
    chunks: chunks.map(({ stats: _s, ...rest }) => rest),
    stats: stats?.scores ?? null,
    timings_ms: stats?.timings_ms ?? null,
    previous_published: p
      ? {
          run_id: p.run_id,
          model_version: p.model_version,
          rows_scored: Number(p.rows_scored),
          stats: prevStats?.scores ?? null,
          features: prevStats?.features ?? null,
        }
      : null,
    features: stats?.features ?? null,
    drift,
    forced_publish: stats?.forced_publish ?? null,
    feature_drift: stats?.feature_drift ?? null,
    segments: stats?.segments ?? null,
    analyst: await analystFacts(c, schema, run),
    outcomes: await readPerformance(c, schema, runId, run.model_name),
  };
}

function failureHistory(run: RunRow): RunFailure[] {
  const earlier = (run.failures ?? []).map((f) => ({ ...f, at: new Date(f.at).toISOString() }));
  if (run.status !== 'failed' && run.status !== 'interrupted') return earlier;
  const at = (run.finished_at ?? run.heartbeat_at).toISOString();
  return [...earlier, { at, status: run.status, kind: run.error_kind, error: run.error }];
}
