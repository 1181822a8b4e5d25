import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { Ledger, type RunParams } from '../../src/ledger/ledger.js';
import { Publications } from '../../src/ledger/publications.js';
import { attachRunTable, registerModel } from '../../src/ledger/runAttach.js';
import { publishRun } from '../../src/publish/publish.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, runInProcess, silentLog } from '../helpers/run.js';

const bands = [{ name: 'low', below: 0.3 }, { name: 'medium', below: 0.7 }, { name: 'high' }];
/** The bands as a reader would write them by hand. */
const bandCase = (score: string) => `CASE WHEN ${score}::float8 < 0.3 THEN 'low' WHEN ${score}::float8 < 0.7 THEN 'medium' ELSE 'high' END`;

/**
 * Issue 15: what downstream teams read, against SQL written by hand: customer_score_changes,
 * percentile (README's definition; ntile(100) where there are no ties), band, and the readers' views.
 */
describe('the downstream views', () => {
  let t: TestDatabase;
  let first: string;
  let second: string;
  let model: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 400, seed: 9, nullFraction: 0.05 });
    model = await modelCopy((m) => {
      m.output.bands = bands;
      // A NULL in this column now rejects the row (customer_score_rejects has rows).
      delete (m.features as { fill?: unknown }[]).find((f) => f.fill !== undefined)?.fill;
    });
    first = (await runInProcess(t, { modelDir: model, chunkSize: 100, maxRejectRatio: 0.5 })).runId;
    // Between the runs: scores move, customers leave, new customers arrive (after the second run too).
    await t.pool.query('UPDATE customers SET days_since_last_order = days_since_last_order + 90 WHERE customer_id % 3 = 0');
    await t.pool.query('DELETE FROM customers WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY customer_id LIMIT 5)');
    await t.pool
      .query(`INSERT INTO customers SELECT customer_id + 1000000, tenure_months, orders_12m, revenue_12m, avg_order_value, days_since_last_order, support_tickets_12m,
                          discount_share, returns_12m, web_sessions_30d, email_open_rate, segment, region, channel, is_subscriber, has_app
                          FROM customers ORDER BY customer_id LIMIT 7`);
    second = (await runInProcess(t, { modelDir: model, chunkSize: 100, maxRejectRatio: 0.5 })).runId;
    await t.pool.query(`INSERT INTO customers (customer_id) VALUES (2000001), (2000002)`);
  });
  afterAll(async () => t.drop());

  it("customer_score_changes equals the published run LEFT JOIN the previous one, plus the previous run's customers it lost, computed by hand", async () => {
    const view = await t.pool.query(
      `SELECT customer_id::text, score, previous_score, delta, is_new, band, previous_band, run_id::text, previous_run_id::text
         FROM scoring.customer_score_changes WHERE NOT is_removed ORDER BY 1`,
    );
    const hand = await t.pool.query(
      `SELECT c.customer_id::text, c.score, p.score AS previous_score, c.score - p.score AS delta, p.customer_id IS NULL AS is_new,
              ${bandCase('c.score')} AS band, CASE WHEN p.score IS NULL THEN NULL ELSE ${bandCase('p.score')} END AS previous_band,
              $2::text AS run_id, $1::text AS previous_run_id
         FROM scoring.score_data c LEFT JOIN scoring.score_data p ON p.run_id = $1::bigint AND p.customer_id = c.customer_id
        WHERE c.run_id = $2::bigint ORDER BY 1`,
      [first, second],
    );
    expect(view.rows).toEqual(hand.rows);
    const arrived = view.rows.filter((r) => Number(r.customer_id) >= 1000000);
    expect(arrived.length).toBeGreaterThan(0);
    expect(arrived.every((r) => r.is_new && r.previous_score === null && r.delta === null)).toBe(true);
    expect(view.rows.some((r) => r.delta !== 0 && r.delta !== null)).toBe(true);
    const removed = await t.pool.query(`SELECT customer_id::text, score, previous_score FROM scoring.customer_score_changes WHERE is_removed ORDER BY 1`);
    const lost = await t.pool.query(
      `SELECT p.customer_id::text, NULL::real AS score, p.score AS previous_score FROM scoring.score_data p
        WHERE p.run_id = $1::bigint AND NOT EXISTS (SELECT 1 FROM scoring.score_data c WHERE c.run_id = $2::bigint AND c.customer_id = p.customer_id) ORDER BY 1`,
      [first, second],
    );
    expect(removed.rows).toEqual(lost.rows);
  });

  it('percentile is 1 + the cut points at or below the score; equal scores share one', async () => {
    const cuts = await t.pool.query<{ same: boolean }>(
      `SELECT r.score_cuts = (SELECT percentile_cont((SELECT array_agg(i / 100.0) FROM generate_series(1, 99) i)) WITHIN GROUP (ORDER BY score)
                                FROM scoring.score_data WHERE run_id = $1) AS same
         FROM scoring.score_runs r WHERE r.run_id = $1`,
      [second],
    );
    expect(cuts.rows[0]?.same).toBe(true);
    const wrong = await t.pool.query(
      `SELECT count(*)::int AS n FROM scoring.customer_scores s JOIN scoring.score_runs r ON r.run_id = s.run_id
        WHERE s.percentile IS DISTINCT FROM 1 + (SELECT count(*) FROM unnest(r.score_cuts) c WHERE c <= s.score::float8)`,
    );
    expect(wrong.rows[0]).toEqual({ n: 0 });
    const range = await t.pool.query('SELECT min(percentile) AS lo, max(percentile) AS hi FROM scoring.customer_scores');
    expect(range.rows[0]).toEqual({ lo: 1, hi: 100 });
    const split = await t.pool.query('SELECT score FROM scoring.customer_scores GROUP BY score HAVING count(DISTINCT percentile) > 1');
    expect(split.rows).toEqual([]);
    // History and the changes view agree with customer_scores.
    const history = await t.pool.query(
      `SELECT count(*)::int AS n FROM scoring.customer_scores s JOIN scoring.customer_score_history h USING (run_id, customer_id)
        WHERE h.percentile IS DISTINCT FROM s.percentile OR h.band IS DISTINCT FROM s.band`,
    );
    expect(history.rows[0]).toEqual({ n: 0 });
    const previous = await t.pool.query(
      `SELECT count(*)::int AS n FROM scoring.customer_score_changes c JOIN scoring.customer_score_history h ON h.run_id = c.previous_run_id AND h.customer_id = c.customer_id
        WHERE h.percentile IS DISTINCT FROM c.previous_percentile`,
    );
    expect(previous.rows[0]).toEqual({ n: 0 });
  });

  it('band follows the manifest output.bands (low < 0.3 <= medium < 0.7 <= high), as a CASE written by hand', async () => {
    const wrong = await t.pool.query(`SELECT count(*)::int AS n FROM scoring.customer_scores WHERE band IS DISTINCT FROM ${bandCase('score')}`);
    expect(wrong.rows[0]).toEqual({ n: 0 });
    const names = await t.pool.query('SELECT DISTINCT band FROM scoring.customer_score_history ORDER BY 1');
    expect(names.rows.map((r) => r.band).every((b) => ['high', 'low', 'medium'].includes(b))).toBe(true);
  });

  it('on scores without ties, percentile equals ntile(100)', async () => {
    const c = await t.pool.connect();
    try {
      const ledger = new Ledger('scoring');
      const params = {
        modelDir: 'm',
        chunkSize: 10,
        dryRun: false,
        keepRuns: 12,
        maxRejectRatio: 0,
        chunkAttempts: 1,
        backendChoice: 'cpu',
        source: { table: 'customers', key: 'customer_id' },
      } satisfies RunParams;
      const runId = await ledger.createRun(c, {
        trigger: 'manual',
        dryRun: false,
        modelName: 'tie-free',
        modelVersion: '1',
        modelSha256: 'x',
        backend: 'cpu',
        params,
        host: 'h',
        pid: 1,
      });
      await c.query('BEGIN');
      await ledger.recordPlan(c, runId, [{ chunkNo: 1, lo: null, hi: null }]);
      await c.query('COMMIT');
      await registerModel(c, ledger, 'tie-free', silentLog);
      await attachRunTable(c, ledger, runId, silentLog);
      // 1,000 distinct scores in a scrambled order.
      await c.query(`INSERT INTO ${ledger.runTable(runId)} (customer_id, score) SELECT g, ((g * 7919) % 1000) / 1000.0 FROM generate_series(1, 1000) g`);
      await new Publications(ledger).recordRanks(c, runId, undefined);
      await publishRun({ client: c, ledger, runId, stats: {}, log: silentLog, settleMs: 10 });
      const differ = await t.pool.query(
        `SELECT count(*)::int AS n FROM scoring.customer_scores s
           JOIN (SELECT customer_id, ntile(100) OVER (ORDER BY score) AS nt FROM scoring.score_data WHERE run_id = $1) x USING (customer_id)
          WHERE s.model_name = 'tie-free' AND s.percentile <> x.nt`,
        [runId],
      );
      expect(differ.rows[0]).toEqual({ n: 0 });
      const noBand = await t.pool.query(`SELECT count(*)::int AS n FROM scoring.customer_scores WHERE model_name = 'tie-free' AND band IS NOT NULL`);
      expect(noBand.rows[0]).toEqual({ n: 0 });
    } finally {
      c.release();
    }
  });

  it('customer_score_rejects lists the published run rejects; a source customer in neither view came after the run', async () => {
    const runs = await t.pool.query<{ rows_rejected: string }>('SELECT rows_rejected FROM scoring.published_runs WHERE is_current AND model_name = $1', [
      'customer-value',
    ]);
    const rejects = await t.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM scoring.customer_score_rejects WHERE model_name = 'customer-value' AND reason IS NOT NULL AND rejected_column IS NOT NULL`,
    );
    expect(rejects.rows[0]?.n).toBe(Number(runs.rows[0]?.rows_rejected));
    expect(rejects.rows[0]?.n).toBeGreaterThan(0);
    const missing = await t.pool.query(
      `SELECT c.customer_id::text FROM customers c
        WHERE NOT EXISTS (SELECT 1 FROM scoring.customer_scores s WHERE s.model_name = 'customer-value' AND s.customer_id = c.customer_id)
          AND NOT EXISTS (SELECT 1 FROM scoring.customer_score_rejects j WHERE j.model_name = 'customer-value' AND j.customer_id = c.customer_id)
        ORDER BY 1`,
    );
    expect(missing.rows).toEqual([{ customer_id: '2000001' }, { customer_id: '2000002' }]);
  });

  it('a customer_id lookup in customer_score_changes reads two partitions by their key, nothing else', async () => {
    // Four probes: the published run's customers (with the previous run's row), and the previous run's customers the published run lost.
    const { rows } = await t.pool.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM scoring.customer_score_changes WHERE model_name = 'customer-value' AND customer_id = (SELECT min(customer_id) FROM customers)`,
    );
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).not.toMatch(/Seq Scan on score_data_\d+ (?!.*never executed)/);
    expect(plan.match(/Index (Only )?Scan using score_data_\d+_pkey on score_data_\d+ \w+ \(actual rows=[\d.]+ loops=1\)/g)).toHaveLength(4);
    expect(plan).not.toMatch(/tie-free/);
  });
});
