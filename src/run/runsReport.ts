import type pg from 'pg';
import { UsageError } from '../errors.js';
import { Ledger, type RunRow, type RunStatus } from './ledger.js';
import { releaseRunLock, tryRunLock } from './lock.js';
import type { ScoreSummary } from './scoreStats.js';
import type { FeaturesSummary } from './featureStats.js';
import type { ForcedPublish } from './forcePublish.js';
import { drift as computeDrift, type Drift } from './psi.js';

/** One line of `scorejob runs`. */
export interface RunListItem {
  run_id: string;
  status: RunStatus;
  trigger: string;
  dry_run: boolean;
  published: boolean;
  model: string;
  model_version: string;
  backend: string;
  rows_scored: number;
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
}

/** `scorejob runs show`: a run, its chunks, its rejects by reason, its statistics, and the previous published run. */
export interface RunDetail extends RunListItem {
  host: string;
  pid: number;
  resumes: number;
  model_sha256: string;
  params: unknown;
  tick_at: string | null;
  published_at: string | null;
  rejects_by_reason: { reason: string; column: string | null; rows: number }[];
  chunks: { chunk_no: number; key_lo: string | null; key_hi: string | null; status: string; attempts: number; rows_scored: number | null; rows_rejected: number | null; duration_ms: number | null; last_error: string | null }[];
  stats: ScoreSummary | null;
  timings_ms: Record<string, number> | null;
  previous_published: { run_id: string; model_version: string; rows_scored: number; stats: ScoreSummary | null; features?: FeaturesSummary | null } | null;
  /** Per-feature NULL, out-of-range and unknown-category fractions over every row read. */
  features?: FeaturesSummary | null;
  /** PSI against the previous published run: as recorded by the run, else computed from the two histograms. */
  drift?: Drift | null;
  /** Set when `scorejob publish --force` published the run over a failed gate. */
  forced_publish?: ForcedPublish | null;
}

/**
 * Before reporting: runs still marked `running` while nobody holds the run lock have died;
 * mark them interrupted so the report tells the truth.
 */
async function settleDeadRuns(c: pg.ClientBase, ledger: Ledger): Promise<void> {
  if (await tryRunLock(c, ledger.schema)) {
    try {
      await ledger.markDeadRuns(c);
    } finally {
      await releaseRunLock(c, ledger.schema);
    }
  }
}

const listColumns = `r.run_id, r.status, r.trigger, r.dry_run, r.model_name, r.model_version, r.backend, r.rows_scored, r.rows_rejected,
  r.chunks_total, r.started_at, r.finished_at, r.heartbeat_at, r.error, r.error_kind, r.published_at,
  (SELECT count(*) FROM %S.score_chunks ch WHERE ch.run_id = r.run_id AND ch.status = 'done')::int AS chunks_done`;

type ListRow = Pick<RunRow, 'run_id' | 'status' | 'trigger' | 'dry_run' | 'model_name' | 'model_version' | 'backend' | 'rows_scored' | 'rows_rejected' | 'chunks_total' | 'started_at' | 'finished_at' | 'heartbeat_at' | 'error' | 'error_kind' | 'published_at'> & { chunks_done: number };

function toItem(r: ListRow): RunListItem {
  const end = r.finished_at ?? (r.status === 'running' ? new Date() : r.heartbeat_at);
  const resumable = r.status === 'failed' || r.status === 'interrupted';
  return {
    run_id: r.run_id,
    status: r.status,
    trigger: r.trigger,
    dry_run: r.dry_run,
    published: r.published_at !== null,
    model: r.model_name,
    model_version: r.model_version,
    backend: r.backend,
    rows_scored: Number(r.rows_scored),
    rows_rejected: Number(r.rows_rejected),
    chunks_done: r.chunks_done,
    chunks_total: r.chunks_total,
    started_at: r.started_at.toISOString(),
    finished_at: r.finished_at?.toISOString() ?? null,
    duration_s: Math.round((end.getTime() - r.started_at.getTime()) / 100) / 10,
    error: r.error,
    error_kind: r.error_kind,
    resume_command: resumable ? `scorejob resume ${r.run_id}` : null,
  };
}

export async function listRuns(c: pg.ClientBase, schema: string, opts: { limit: number; status?: string | undefined }): Promise<RunListItem[]> {
  const ledger = new Ledger((n) => c.escapeIdentifier(n), schema);
  await settleDeadRuns(c, ledger);
  const { rows } = await c.query<ListRow>(
    `SELECT ${listColumns.replace('%S', ledger.s)} FROM ${ledger.s}.score_runs r
      WHERE ($2::text IS NULL OR r.status = $2) ORDER BY r.run_id DESC LIMIT $1`,
    [opts.limit, opts.status ?? null],
  );
  return rows.map(toItem);
}

export async function showRun(c: pg.ClientBase, schema: string, runId: string): Promise<RunDetail> {
  if (!/^\d{1,18}$/.test(runId)) throw new UsageError(`run id "${runId}" is not a run number (see \`scorejob runs\`)`);
  const ledger = new Ledger((n) => c.escapeIdentifier(n), schema);
  await settleDeadRuns(c, ledger);
  const { rows } = await c.query<ListRow & RunRow>(`SELECT ${listColumns.replace('%S', ledger.s)}, r.* FROM ${ledger.s}.score_runs r WHERE r.run_id = $1`, [runId]);
  const run = rows[0];
  if (!run) throw new UsageError(`there is no run ${runId} (see \`scorejob runs\`)`);
  const rejects = await c.query<{ reason: string; column: string | null; rows: number }>(
    `SELECT reason, detail->>'column' AS column, count(*)::int AS rows FROM ${ledger.s}.score_rejects WHERE run_id = $1 GROUP BY 1, 2 ORDER BY 3 DESC`,
    [runId],
  );
  const chunks = await ledger.getChunks(c, runId);
  const prev = await c.query<Pick<RunRow, 'run_id' | 'model_version' | 'rows_scored' | 'stats'>>(
    `SELECT run_id, model_version, rows_scored, stats FROM ${ledger.s}.score_runs
      WHERE run_id < $1 AND published_at IS NOT NULL ORDER BY run_id DESC LIMIT 1`,
    [runId],
  );
  const p = prev.rows[0];
  const stats = (run.stats ?? null) as { scores?: ScoreSummary; timings_ms?: Record<string, number>; features?: FeaturesSummary; drift?: Drift; forced_publish?: ForcedPublish } | null;
  const prevStats = (p?.stats ?? null) as { scores?: ScoreSummary; features?: FeaturesSummary } | null;
  const drift = stats?.drift ?? (stats?.scores && p ? computeDrift(p.run_id, prevStats?.scores?.histogram, stats.scores.histogram) : null);
  return {
    ...toItem(run),
    host: run.host,
    pid: run.pid,
    resumes: run.resumes,
    model_sha256: run.model_sha256,
    params: run.params,
    tick_at: run.tick_at?.toISOString() ?? null,
    published_at: run.published_at?.toISOString() ?? null,
    rejects_by_reason: rejects.rows,
    chunks: chunks.map(({ stats: _s, ...rest }) => rest),
    stats: stats?.scores ?? null,
    timings_ms: stats?.timings_ms ?? null,
    previous_published: p
      ? { run_id: p.run_id, model_version: p.model_version, rows_scored: Number(p.rows_scored), stats: ((p.stats as { scores?: ScoreSummary } | null)?.scores ?? null), features: prevStats?.features ?? null }
      : null,
    features: stats?.features ?? null,
    drift,
    forced_publish: stats?.forced_publish ?? null,
  };
}
