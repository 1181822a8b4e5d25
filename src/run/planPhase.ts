import { EmptySourceError, RunFailedError } from '../errors.js';
import { withTransaction } from '../db/sql.js';
import { nullKeysProblem } from '../db/sourceColumns.js';
import { attachRunTable, registerModel } from '../ledger/runAttach.js';
import type { ExecuteDeps, PlannedRun, RunProgress } from './runState.js';
import { SourceView } from './sourceView.js';

/**
 * The run up to its first chunk: the features' work before planning (freezing what it rescores),
 * the run's snapshot of the source and its plan, its model registered and its table attached (not for a
 * dry run), the features' own tables. Returns the chunks, all and pending.
 */
export async function planRun(deps: ExecuteDeps, progress: RunProgress): Promise<PlannedRun> {
  const { ledger, runId, params, log, model } = deps;
  for (const f of deps.features) await f.beforePlan?.(deps);
  const view = await SourceView.open({ pool: deps.pool, ledger, ledgerClient: () => deps.client, runId, source: params.source, log });
  progress.view = view;
  const sourceRows = await ensurePlanned(deps, view);
  if (!params.dryRun) {
    await registerModel(deps.client, ledger, model.manifest.name, log);
    await attachRunTable(deps.client, ledger, runId, log);
  }
  for (const f of deps.features) await f.prepareStorage?.(deps);
  const chunks = await ledger.getChunks(deps.client, runId);
  const pending = await ledger.pendingChunks(deps.client, runId);
  return { chunks, pending, sourceRows, view };
}

/**
 * Plans the run's chunks in the run's snapshot unless a plan is recorded. Planned here (not before the run
 * row) so that a failed plan is recorded on the run, and a resume of a run that died while planning plans
 * again. A resume of a planned run counts its unfinished chunks again in its new snapshot: they read the
 * source as of the resume. Returns the source's row count when it planned now.
 */
async function ensurePlanned(deps: ExecuteDeps, view: SourceView): Promise<number | undefined> {
  const { ledger, runId, params, log } = deps;
  const run = await ledger.getRun(deps.client, runId);
  if (run?.chunks_total !== null && run?.chunks_total !== undefined) {
    await view.recount(await ledger.pendingChunks(deps.client, runId));
    return undefined;
  }
  // Checks of the source that can refuse the run, in its snapshot, while the plan passes over the keys
  // (connections of their own): nothing is recorded before both are done, and a refusal comes first.
  const t0 = performance.now();
  const [checked, planned] = await Promise.allSettled([planningChecks(deps, view.snapshotId), view.plan(params.chunkSize)]);
  if (checked.status === 'rejected') throw checked.reason;
  if (planned.status === 'rejected') throw planned.reason;
  const plan = planned.value;
  // The start-up check refused NULL keys; these appeared since (in the run's snapshot): still no row goes unaccounted for.
  if (plan.nullKeys > 0) throw new RunFailedError(nullKeysProblem(params.source.table, params.source.key, plan.nullKeys), runId);
  if (plan.rows === 0 && !deps.features.some((f) => f.allowsEmptySource)) throw new EmptySourceError(params.source.table, runId);
  await withTransaction(deps.client, async (c) => {
    await ledger.recordPlan(c, runId, plan.chunks);
    await ledger.recordChunkRows(c, runId, plan.chunks);
    for (const f of deps.features) await f.planned?.(c, deps, plan.chunks);
  });
  deps.timings.add('plan', performance.now() - t0);
  log.info({ chunks: plan.chunks.length, source_rows: plan.rows }, `run ${runId} planned: ${plan.rows} customers in ${plan.chunks.length} chunks`);
  return plan.rows;
}

async function planningChecks(deps: ExecuteDeps, snapshotId: string): Promise<void> {
  for (const f of deps.features) await f.planning?.(deps, snapshotId);
}
