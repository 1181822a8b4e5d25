import type pg from 'pg';
import { UsageError } from '../errors.js';
import { Ledger, type RunFailure, type RunListRow, type RunRow } from '../ledger/ledger.js';
import { runKindLabel, type RunDetail, type RunListItem } from './runDetail.js';
import { drift as computeDrift } from '../stats/psi.js';
import { analystFacts } from './analystFacts.js';
import { readPerformance } from './performanceReport.js';
import { readFeatureReports, type FeatureReport } from './featureReport.js';

export type { PublicationInfo, RunDetail, RunListItem } from './runDetail.js';

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
  // A sibling run goes where the run it was scored beside goes: resumed with it (never on its own), never published by force.
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
    kind: runKindLabel(r.kind),
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

/** `runs show`: the run in detail, with what each of the run features in `reports` reads for its part. */
export async function showRun(c: pg.ClientBase, schema: string, runId: string, reports: readonly FeatureReport[] = []): Promise<RunDetail> {
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
  const detail: RunDetail = {
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
    analyst: await analystFacts(c, schema, run, featureAnalystFacts(run, reports)),
    outcomes: await readPerformance(c, schema, runId, run.model_name),
  };
  const read = await readFeatureReports(c, schema, detail, reports);
  return Object.keys(read).length === 0 ? detail : { ...detail, reports: read };
}

/** The features' own facts of the run for `analyst` (FeatureReport.analyst), merged in registration order. */
function featureAnalystFacts(run: RunRow, reports: readonly FeatureReport[]): Record<string, unknown> {
  return Object.assign({}, ...reports.map((r) => r.analyst?.(run) ?? {})) as Record<string, unknown>;
}

function failureHistory(run: RunRow): RunFailure[] {
  const earlier = (run.failures ?? []).map((f) => ({ ...f, at: new Date(f.at).toISOString() }));
  if (run.status !== 'failed' && run.status !== 'interrupted') return earlier;
  const at = (run.finished_at ?? run.heartbeat_at).toISOString();
  return [...earlier, { at, status: run.status, kind: run.error_kind, error: run.error }];
}
