import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runInProcess } from '../helpers/run.js';

/**
 * History (README "The downstream contract"): history keeps the last N published runs. Checked through what readers see
 * (`customer_score_history`), with N ≥ 2 so that keeping N−1 or N+1 shows.
 */
describe('--keep-runs N keeps exactly the last N published runs in history', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 150, seed: 4 });
  });
  afterAll(async () => t.drop());

  const historyRuns = async (): Promise<string[]> =>
    (await t.pool.query<{ run_id: string }>('SELECT DISTINCT run_id::text FROM scoring.customer_score_history ORDER BY 1')).rows.map((r) => r.run_id);
  const historyRows = async (runId: string): Promise<number> =>
    (await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.customer_score_history WHERE run_id = $1', [runId])).rows[0]?.n ?? -1;

  it('N = 3: with 4 then 5 published runs, the newest 3 stay whole and the oldest go', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await runInProcess(t, { keepRuns: 3 })).runId);
    expect(await historyRuns()).toEqual(ids);

    const fourth = await runInProcess(t, { keepRuns: 3 });
    ids.push(fourth.runId);
    expect(await historyRuns()).toEqual(ids.slice(1));
    for (const id of ids.slice(1)) expect(await historyRows(id)).toBe(150);

    ids.push((await runInProcess(t, { keepRuns: 3 })).runId);
    expect(await historyRuns()).toEqual(ids.slice(2));
    const published = await t.pool.query<{ run_id: string }>('SELECT DISTINCT run_id::text FROM scoring.customer_scores');
    expect(published.rows).toEqual([{ run_id: ids[4] }]);
  });

  it('N = 2 after N = 3: a smaller --keep-runs drops down to the newest 2', async () => {
    const before = await historyRuns();
    expect(before).toHaveLength(3);
    const r = await runInProcess(t, { keepRuns: 2 });
    expect(await historyRuns()).toEqual([before[2], r.runId]);
  });
});
