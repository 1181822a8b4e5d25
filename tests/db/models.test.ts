import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listRuns } from '../../src/report/runsReport.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, runInProcess } from '../helpers/run.js';

/** Per model: which run customer_scores shows, how many rows, and any row under another model's name. */
async function published(t: TestDatabase): Promise<Record<string, { run_id: string; n: number }>> {
  const { rows } = await t.pool.query<{ model_name: string; run_id: string; n: string }>(
    'SELECT model_name, run_id::text, count(*) n FROM scoring.customer_scores GROUP BY 1, 2 ORDER BY 1',
  );
  return Object.fromEntries(rows.map((r) => [r.model_name, { run_id: r.run_id, n: Number(r.n) }]));
}

async function historyRuns(t: TestDatabase, model: string): Promise<string[]> {
  const { rows } = await t.pool.query<{ id: string }>('SELECT DISTINCT run_id::text id FROM scoring.customer_score_history WHERE model_name = $1', [model]);
  return rows.map((r) => r.id).sort((a, b) => Number(a) - Number(b));
}

async function baselineOf(t: TestDatabase, runId: string): Promise<string | null> {
  const { rows } = await t.pool.query<{ b: string | null }>(`SELECT stats->'drift'->>'baseline_run_id' AS b FROM scoring.score_runs WHERE run_id = $1`, [
    runId,
  ]);
  return rows[0]?.b ?? null;
}

describe('several models in one schema', () => {
  let t: TestDatabase;
  let expansion: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 1200, seed: 13, nullFraction: 0 });
    // A second model reading another source whose key is called account_id (half the customers).
    await t.pool.query(`CREATE VIEW accounts AS SELECT customer_id AS account_id, * FROM customers WHERE customer_id % 2 = 0`);
    expansion = await modelCopy((m) => {
      m.name = 'account-expansion';
      m.source = { table: 'public.accounts', key: 'account_id' };
    });
  });
  afterAll(async () => t.drop());

  it('scored alternately, each model publishes on its own: its view rows, its history, its drift baseline', async () => {
    const halves = Number((await t.pool.query<{ n: string }>('SELECT count(*) n FROM accounts')).rows[0]?.n);
    const a1 = await runInProcess(t, { chunkSize: 500 });
    const b1 = await runInProcess(t, { chunkSize: 500, modelDir: expansion });
    expect(await published(t)).toEqual({ 'account-expansion': { run_id: b1.runId, n: halves }, 'customer-value': { run_id: a1.runId, n: 1200 } });
    const a2 = await runInProcess(t, { chunkSize: 500 });
    const b2 = await runInProcess(t, { chunkSize: 500, modelDir: expansion });
    expect(await published(t)).toEqual({ 'account-expansion': { run_id: b2.runId, n: halves }, 'customer-value': { run_id: a2.runId, n: 1200 } });
    expect(await historyRuns(t, 'customer-value')).toEqual([a1.runId, a2.runId]);
    expect(await historyRuns(t, 'account-expansion')).toEqual([b1.runId, b2.runId]);
    // Drift compares a model with its own previous run, never with the other model's.
    expect(await baselineOf(t, a2.runId)).toBe(a1.runId);
    expect(await baselineOf(t, b2.runId)).toBe(b1.runId);
    expect(await baselineOf(t, b1.runId)).toBeNull();
    expect(a2.psi).not.toBeNull();
    expect(b2.psi).not.toBeNull();
    // The key column keeps its name in the views whatever the source calls it.
    const key = await t.pool.query(`SELECT customer_id FROM scoring.customer_scores WHERE model_name = 'account-expansion' AND customer_id % 2 = 1`);
    expect(key.rowCount).toBe(0);
    // Readers never see one model's scores under another's name.
    const mixed = await t.pool.query<{ n: string }>(
      `SELECT count(*) n FROM scoring.customer_scores s JOIN scoring.score_runs r ON r.run_id = s.run_id WHERE r.model_name <> s.model_name`,
    );
    expect(mixed.rows[0]?.n).toBe('0');
    const unique = await t.pool.query<{ n: string; d: string }>(`SELECT count(*) n, count(DISTINCT (model_name, customer_id)) d FROM scoring.customer_scores`);
    expect(unique.rows[0]?.n).toBe(unique.rows[0]?.d);
  });

  it('two models run at the same time, each publishing its own; the same model twice at once: one exits 75', async () => {
    const [a, b] = await Promise.all([runInProcess(t, { chunkSize: 100 }), runInProcess(t, { chunkSize: 100, modelDir: expansion })]);
    const shown = await published(t);
    expect(shown['customer-value']?.run_id).toBe(a.runId);
    expect(shown['account-expansion']?.run_id).toBe(b.runId);
    const twice = await Promise.allSettled([runInProcess(t, { chunkSize: 100 }), runInProcess(t, { chunkSize: 100 })]);
    const codes = twice.map((r) => (r.status === 'fulfilled' ? 0 : (r.reason as { exitCode?: number }).exitCode));
    expect(codes.sort()).toEqual([0, 75]);
    const refused = twice.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(String((refused.reason as Error).message)).toMatch(/holds the lock/);
    // `runs --model-name` lists one model's runs only.
    const c = await t.pool.connect();
    try {
      const listed = await listRuns(c, 'scoring', { limit: 100, modelName: 'account-expansion' });
      expect(listed.length).toBeGreaterThan(0);
      expect(listed.every((r) => r.model === 'account-expansion')).toBe(true);
    } finally {
      c.release();
    }
  });

  it("retention of one model never drops the other's runs", async () => {
    const before = await historyRuns(t, 'account-expansion');
    const a = await runInProcess(t, { chunkSize: 500, keepRuns: 1 });
    expect(await historyRuns(t, 'customer-value')).toEqual([a.runId]);
    expect(await historyRuns(t, 'account-expansion')).toEqual(before);
  });

  it("a lookup of one customer for one model probes that model's published partition only", async () => {
    const { rows } = await t.pool.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM scoring.customer_scores WHERE model_name = 'account-expansion' AND customer_id = 1002`,
    );
    const plan = rows.map((r) => r['QUERY PLAN']);
    const run = (await published(t))['account-expansion']?.run_id;
    const executed = plan.filter((l) => /Scan/.test(l) && /score_data_\d+/.test(l) && !/never executed/.test(l));
    expect(executed, plan.join('\n')).toHaveLength(1);
    expect(executed[0]).toMatch(new RegExp(`Index (Only )?Scan using score_data_${run}_pkey`));
  });
});
