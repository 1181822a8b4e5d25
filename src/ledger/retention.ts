import type pg from 'pg';
import type { Logger } from '../log.js';
import type { Ledger } from './ledger.js';

/** One retention pass (applyRetention): the model's runs, how many to keep, and the run in progress (never touched). */
export interface RetentionRequest {
  client: pg.ClientBase;
  ledger: Ledger;
  modelName: string;
  keep: number;
  log: Logger;
  current?: string | undefined;
}

/**
 * What retention keeps of one model's runs (docs/downstream.md "Every publication, and what changed"); other models' runs are never touched:
 * - the published run, always, whatever `keep` says, and the newest published runs up to `keep` in all;
 * - the table of a run that was never published (failed, interrupted, stopped by a gate, dry) until a
 *   later run is published (from then on neither `resume` nor `publish --force` accepts it), and at
 *   most `keep` of them in any case, the newest.
 * - a run made as part of another (score_runs.champion_run_id) while that run's scores are kept, unless
 *   it was published (then it is a run like any other).
 * Everything else is dropped whole: attached tables are detached CONCURRENTLY (readers never blocked)
 * first. `current` (the run in progress, if any) is never touched. Best effort: a failure is logged,
 * and the next run finishes the job.
 */
export async function applyRetention(opts: RetentionRequest): Promise<string[]> {
  const { client: c, ledger, modelName, keep, log, current } = opts;
  const all = await ledger.runTables(c, modelName, current);
  // A sibling run never published is no kept run of its own: it goes with the run it is part of (a published one counts as any run).
  const rows = all.filter((r) => r.champion_run_id === null || r.published);
  const published = rows.filter((r) => r.published && !r.is_pointer);
  const unpublished = rows.filter((r) => !r.published);
  const pointerKept = rows.some((r) => r.is_pointer) ? 1 : 0;
  const champions = [
    // The published run counts as one of `keep`.
    ...published.slice(Math.max(0, keep - pointerKept)),
    ...unpublished.filter((r) => r.superseded),
    ...unpublished.filter((r) => !r.superseded).slice(Math.max(0, keep)),
  ];
  const doomedIds = new Set(champions.map((r) => r.run_id));
  const listed = new Set(all.map((r) => r.run_id));
  const doomed = [
    ...champions,
    // The run it is part of dropped now, or before (its table gone; a running run's sibling is running too, and not listed).
    ...all.filter(
      (r) =>
        r.champion_run_id !== null && !r.published && (doomedIds.has(r.champion_run_id) || (!listed.has(r.champion_run_id) && r.champion_run_id !== current)),
    ),
  ];
  const dropped: string[] = [];
  // A layered only_new run reads its carried scores from the run below it (sql/013_layers.sql): that run
  // stays while a run it does not drop lies on it; layers go first, newest first.
  const layers = doomed.length > 0 ? await ledger.onlyNew.layers(c) : [];
  for (const row of doomed.sort((a, b) => Number(b.run_id) - Number(a.run_id))) {
    if (layers.some((l) => l.underRunId === row.run_id && !dropped.includes(l.runId))) {
      log.info({ kept_run: row.run_id }, `keeping the scores of run ${row.run_id}: a kept only_new run carries scores from them`);
      continue;
    }
    try {
      await c.query(`SET lock_timeout = '10s'`);
      await ledger.storage.detachAndDrop(c, row.run_id, row);
      await dropRunLeftovers(c, ledger, row.run_id);
      dropped.push(row.run_id);
    } catch (err) {
      log.warn({ dropped_run: row.run_id, err: (err as Error).message }, `could not drop the scores of run ${row.run_id} yet; the next run will try again`);
    } finally {
      await c.query(`RESET lock_timeout`).catch(() => undefined);
    }
  }
  return dropped.sort((a, b) => Number(a) - Number(b));
}

/** What goes with a run's scores when they are dropped: its reasons table, its layer and stored histogram, an only-new run's frozen rows. */
export async function dropRunLeftovers(c: pg.ClientBase, ledger: Ledger, runId: string): Promise<void> {
  await ledger.storage.dropReasonsTable(c, runId);
  await ledger.onlyNew.dropLayer(c, runId);
  await ledger.storage.dropFrozenRows(c, runId);
}
