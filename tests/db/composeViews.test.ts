import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { rollback } from '../../src/publish/rollback.js';
import { publishChallenger } from '../../src/features/challenger/challengerPublish.js';
import { forcePublish } from '../../src/publish/forcePublish.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, runInProcess, silentLog, testConfig } from '../helpers/run.js';

const count = async (t: TestDatabase, sql: string, params: unknown[] = []) => Number((await t.pool.query<{ n: string }>(sql, params)).rows[0]!.n);

const addCustomers = (t: TestDatabase, offset: number, n: number) =>
  t.pool.query(
    `INSERT INTO customers SELECT customer_id + $1, tenure_months, orders_12m, revenue_12m, avg_order_value, days_since_last_order, support_tickets_12m,
            discount_share, returns_12m, web_sessions_30d, email_open_rate, segment, region, channel, is_subscriber, has_app, now()
       FROM customers WHERE customer_id < 1000000 ORDER BY customer_id LIMIT $2`,
    [offset, n],
  );

/** customer_id -> the row of customer_score_changes (fails on a customer listed twice). */
async function changes(t: TestDatabase, sql = 'SELECT * FROM scoring.customer_score_changes'): Promise<Map<string, Record<string, unknown>>> {
  const { rows } = await t.pool.query<Record<string, unknown>>(`SELECT customer_id::text AS k, * FROM (${sql}) c`);
  const map = new Map(rows.map((r) => [r.k as string, r]));
  expect(map.size).toBe(rows.length);
  return map;
}

/**
 * Where features meet, the reader views keep meaning what docs/downstream-semantics.md says: reasons of
 * carried customers, "since last month" after an only-new layer, removed customers, and counts that say
 * what a publication shows.
 */
describe('reader views compose across only-new layers, rollbacks and challengers', () => {
  let t: TestDatabase;
  let model: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 300, seed: 61, nullFraction: 0 });
    await t.pool.query(`ALTER TABLE customers ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()`);
    model = await modelCopy((m) => (m.source = { table: 'customers', key: 'customer_id', updated_column: 'updated_at' }));
  });
  afterAll(async () => t.drop());

  it('an only-new layer keeps the reasons of the customers it carries, and changes still compare with the month before', async () => {
    const before = await runInProcess(t, { modelDir: model, chunkSize: 100, keepRuns: 5, reasons: 2 });
    // "Last month" moves: 40 customers change, then the month's full run.
    await t.pool.query(
      `UPDATE customers SET orders_12m = orders_12m + 7, updated_at = now() WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY customer_id LIMIT 40)`,
    );
    const full = await runInProcess(t, { modelDir: model, chunkSize: 100, keepRuns: 5, reasons: 2 });
    const monthly = await changes(t);
    const moved = [...monthly.values()].filter((r) => r.delta !== null && r.delta !== 0).length;
    expect(moved).toBeGreaterThan(0);

    await addCustomers(t, 10_000_000, 10);
    const layer = await runInProcess(t, { modelDir: model, chunkSize: 100, keepRuns: 5, onlyNew: true, reasons: 2 });
    expect(layer.rowsScored).toBe(10);
    // Every published customer has its reasons (2 each), the carried ones from the full run that scored them.
    expect(await count(t, 'SELECT count(*) n FROM scoring.customer_scores')).toBe(310);
    expect(await count(t, 'SELECT count(DISTINCT customer_id) n FROM scoring.customer_score_reasons')).toBe(310);
    expect(await count(t, 'SELECT count(*) n FROM scoring.customer_score_reasons')).toBe(620);
    expect(
      await count(t, 'SELECT count(*) n FROM scoring.customer_score_reasons r JOIN scoring.customer_scores s USING (customer_id) WHERE r.run_id <> s.run_id'),
    ).toBe(0);
    // Changes after the layer: the month's moves (against the run before the full run), plus the 10 new.
    const after = await changes(t);
    const row = [...after.values()][0]!;
    expect(row.previous_run_id).toBe(before.runId);
    expect([...after.values()].filter((r) => r.is_new).length).toBe(10);
    expect([...after.values()].filter((r) => r.delta !== null && r.delta !== 0).length).toBe(moved);
    const pub = (
      await t.pool.query(
        'SELECT kind, rows_scored::int, rows_published::int, rows_carried::int, rows_with_reasons::int, compare_run_id::text, fewer_reasons FROM scoring.published_runs WHERE run_id = $1',
        [layer.runId],
      )
    ).rows;
    expect(pub).toEqual([
      { kind: 'only-new', rows_scored: 10, rows_published: 310, rows_carried: 300, rows_with_reasons: 310, compare_run_id: before.runId, fewer_reasons: false },
    ]);
    expect((await t.pool.query('SELECT kind, rows_published::int FROM scoring.published_runs WHERE run_id = $1', [full.runId])).rows).toEqual([
      { kind: 'full', rows_published: 300 },
    ]);
  });

  it("an only-new run without --reasons keeps the carried customers' reasons: no fewer than before", async () => {
    await addCustomers(t, 20_000_000, 5);
    const layer = await runInProcess(t, { modelDir: model, chunkSize: 100, keepRuns: 5, onlyNew: true });
    expect(await count(t, 'SELECT count(*) n FROM scoring.customer_scores')).toBe(315);
    // The 10 customers of the previous layer are copied into this one with their run: their reasons come along.
    expect(await count(t, 'SELECT count(DISTINCT customer_id) n FROM scoring.customer_score_reasons')).toBe(310);
    expect((await t.pool.query('SELECT rows_with_reasons::int, fewer_reasons FROM scoring.published_runs WHERE run_id = $1', [layer.runId])).rows).toEqual([
      { rows_with_reasons: 310, fewer_reasons: false },
    ]);
  });

  it('a rollback lists the customers it removes (NULL score, is_removed), and the function compares with any kept run', async () => {
    const current = (await t.pool.query<{ run_id: string }>('SELECT run_id::text FROM scoring.published_run')).rows[0]!.run_id;
    const target = (
      await t.pool.query<{ run_id: string }>(`SELECT run_id::text FROM scoring.published_runs WHERE kind = 'full' ORDER BY publication_id DESC LIMIT 1`)
    ).rows[0]!.run_id;
    await rollback({ config: testConfig(t), log: silentLog }, { runId: target });
    const after = await changes(t);
    const removed = [...after.values()].filter((r) => r.is_removed);
    expect(removed.length).toBe(15);
    expect(removed.every((r) => r.score === null && r.previous_score !== null && r.delta === null && r.previous_run_id === current)).toBe(true);
    expect(await count(t, 'SELECT count(*) n FROM scoring.customer_score_changes WHERE NOT is_removed')).toBe(300);
    // Against the full run itself: nothing moved, nobody new, nobody removed.
    const same = await changes(t, `SELECT * FROM scoring.customer_score_changes_since(${target})`);
    expect(same.size).toBe(300);
    expect([...same.values()].every((r) => r.delta === 0 && !r.is_new && !r.is_removed)).toBe(true);
    await expect(t.pool.query('SELECT * FROM scoring.customer_score_changes_since(987654)')).rejects.toThrow(/run 987654 is not a run of scoring.score_runs/);
    expect(
      (await t.pool.query('SELECT kind, rows_published::int, rows_with_reasons::int FROM scoring.published_runs ORDER BY publication_id DESC LIMIT 1')).rows,
    ).toEqual([{ kind: 'rollback', rows_published: 300, rows_with_reasons: 300 }]);
  });

  it("a challenger published in the champion's place says it leaves fewer reasons, and names the challenger's own model", async () => {
    const challengerDir = await modelCopy((m) => {
      m.name = 'churn2c';
      m.version = '2.0.0';
      m.source = { table: 'customers', key: 'customer_id', updated_column: 'updated_at' };
    });
    const champion = await runInProcess(t, { modelDir: model, chunkSize: 100, keepRuns: 5, reasons: 2, challengerDir });
    const result = await publishChallenger({ config: testConfig(t), log: silentLog }, champion.runId, { force: true, reason: 'compare in production' });
    expect(result.reasonsLost?.fromRunId).toBe(champion.runId);
    const pub = (
      await t.pool.query(
        'SELECT kind, model_name, scored_by_model, model_version, challenger_of_run_id::text, rows_with_reasons::int, fewer_reasons FROM scoring.published_runs ORDER BY publication_id DESC LIMIT 1',
      )
    ).rows;
    expect(pub).toEqual([
      {
        kind: 'challenger',
        model_name: 'customer-value',
        scored_by_model: 'churn2c',
        model_version: '2.0.0',
        challenger_of_run_id: champion.runId,
        rows_with_reasons: 0,
        fewer_reasons: true,
      },
    ]);
  });

  it("a run published by force after review keeps its own duration: the wait before the publish is not the run's", async () => {
    await t.pool.query(`UPDATE customers SET orders_12m = NULL WHERE customer_id = (SELECT min(customer_id) FROM customers)`);
    await expect(runInProcess(t, { modelDir: model, chunkSize: 100, keepRuns: 5, maxRejectRatio: 0, replacePromoted: true })).rejects.toThrow(/reject/);
    const gated = (
      await t.pool.query<{ id: string; finished: Date }>(
        `SELECT run_id::text id, finished_at finished FROM scoring.score_runs WHERE status = 'failed' ORDER BY run_id DESC LIMIT 1`,
      )
    ).rows[0]!;
    await new Promise((r) => setTimeout(r, 1500)); // the review
    await forcePublish({ config: testConfig(t), log: silentLog }, gated.id, { force: true, reason: 'one NULL, reviewed' });
    const after = (
      await t.pool.query<{ finished: Date; published: Date; forced: boolean; kind: string }>(
        `SELECT r.finished_at finished, p.published_at published, p.forced, p.kind FROM scoring.score_runs r JOIN scoring.published_runs p ON p.run_id = r.run_id WHERE r.run_id = $1`,
        [gated.id],
      )
    ).rows[0]!;
    expect(after.finished.getTime()).toBe(gated.finished.getTime());
    expect(after.published.getTime() - after.finished.getTime()).toBeGreaterThanOrEqual(1400);
    expect({ forced: after.forced, kind: after.kind }).toEqual({ forced: true, kind: 'full' });
    await t.pool.query(`UPDATE customers SET orders_12m = 1 WHERE orders_12m IS NULL`);
  });

  it('a reader looking up one customer probes an index in every view', async () => {
    // These tables are tiny, where a scan is cheaper: with scans priced out, the plan shows whether the filter reaches every partition's index.
    const c = await t.pool.connect();
    try {
      await c.query('SET enable_seqscan = off');
      for (const view of ['customer_score_changes', 'customer_score_reasons', 'customer_scores']) {
        const plan = (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT * FROM scoring.${view} WHERE customer_id = 42`)).rows
          .map((r) => r['QUERY PLAN'])
          .join('\n');
        expect(plan, view).not.toMatch(/Seq Scan on score_(data|reasons)_\d+/);
      }
    } finally {
      c.release();
    }
  });
});
