import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { seedOutcomes } from '../../src/dev/seedOutcomes.js';
import { performanceGate, syncOutcomes } from '../../src/features/outcomes/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { day, modelWithOutcomes, publishedAt } from '../helpers/outcomes.js';
import { runInProcess } from '../helpers/run.js';

/** Rank-sum AUC, KS and Brier over joined rows, written out here as the reference the SQL must match. */
function reference(rows: { p: number; y: number }[]): { auc: number; ks: number; brier: number; positives: number } {
  const sorted = [...rows].sort((a, b) => a.p - b.p);
  const positives = rows.filter((r) => r.y === 1).length;
  const negatives = rows.length - positives;
  let rankSum = 0;
  let ks = 0;
  let pos = 0;
  let neg = 0;
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1]!.p === sorted[i]!.p) j++;
    for (let k = i; k <= j; k++) {
      if (sorted[k]!.y === 1) {
        rankSum += (i + j + 2) / 2;
        pos++;
      } else neg++;
    }
    ks = Math.max(ks, Math.abs(pos / positives - neg / negatives));
    i = j + 1;
  }
  const brier = rows.reduce((s, r) => s + (r.p - r.y) ** 2, 0) / rows.length;
  return { auc: (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives), ks, brier, positives };
}

describe('scorejob outcomes sync', () => {
  let t: TestDatabase;
  let dir: string;
  let run1: string;
  let run2: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 3000, seed: 5 });
    dir = await modelWithOutcomes();
    run1 = (await runInProcess(t, { modelDir: dir })).runId;
    await seedOutcomes(t.pool, { schema: 'scoring', seed: 3 });
    run2 = (await runInProcess(t, { modelDir: dir })).runId;
  }, 120_000);
  afterAll(async () => t.drop());

  it('AUC, KS and Brier per run equal a reference over the joined rows, to 1e-6', async () => {
    const asOf = new Date((await publishedAt(t, run1)).getTime() + 100 * day);
    const synced = await syncOutcomes(t.pool, { schema: 'scoring', modelDir: dir, asOf });
    expect(synced.map((s) => s.runId)).toEqual([run1, run2]);
    for (const runId of [run1, run2]) {
      const joined = await t.pool.query<{ p: number; y: number; band: string }>(
        `SELECT h.score::float8 AS p, bool_or(o.label)::int AS y, h.band
           FROM scoring.customer_score_history h
           JOIN customer_outcomes o ON o.customer_id = h.customer_id
           JOIN scoring.score_runs r ON r.run_id = h.run_id
          WHERE h.run_id = $1 AND o.event_time > r.published_at AND o.event_time <= least(r.published_at + interval '90 days', $2)
          GROUP BY h.customer_id, h.score, h.band`,
        [runId, asOf],
      );
      const ref = reference(joined.rows);
      const got = await t.pool.query(
        `SELECT auc, ks, brier, positives, with_outcome, customers FROM scoring.model_performance WHERE run_id = $1 AND band IS NULL`,
        [runId],
      );
      expect(got.rows).toHaveLength(1);
      const row = got.rows[0];
      expect(Number(row.with_outcome)).toBe(joined.rows.length);
      expect(Number(row.positives)).toBe(ref.positives);
      expect(row.auc).toBeCloseTo(ref.auc, 6);
      expect(row.ks).toBeCloseTo(ref.ks, 6);
      expect(row.brier).toBeCloseTo(ref.brier, 6);
      // Each band against the same reference over its own rows.
      const bands = await t.pool.query(`SELECT band, auc, ks, brier FROM scoring.model_performance WHERE run_id = $1 AND band IS NOT NULL`, [runId]);
      expect(bands.rows.map((b) => b.band).sort()).toEqual(['high', 'low', 'mid']);
      for (const b of bands.rows) {
        const own = reference(joined.rows.filter((r) => r.band === b.band));
        expect(b.auc, b.band).toBeCloseTo(own.auc, 6);
        expect(b.ks, b.band).toBeCloseTo(own.ks, 6);
        expect(b.brier, b.band).toBeCloseTo(own.brier, 6);
      }
    }
    // Run 2 was published after run 1's outcomes were drawn: some of them fall in its window, not all.
    const coverage = await t.pool.query(`SELECT run_id::text, coverage, maturity FROM scoring.model_performance WHERE band IS NULL ORDER BY run_id`);
    expect(coverage.rows[0]).toMatchObject({ run_id: run1, coverage: 1, maturity: 1 });
  });

  it('one row per band beside the whole run, the bands adding up to it', async () => {
    const { rows } = await t.pool.query(
      `SELECT band, customers, with_outcome, positives FROM scoring.model_performance WHERE run_id = $1 ORDER BY band NULLS FIRST`,
      [run1],
    );
    const whole = rows[0];
    expect(whole.band).toBeNull();
    const bands = rows.slice(1);
    expect(bands.length).toBeGreaterThan(1);
    expect(bands.reduce((s, r) => s + Number(r.customers), 0)).toBe(Number(whole.customers));
    expect(bands.reduce((s, r) => s + Number(r.positives), 0)).toBe(Number(whole.positives));
  });

  it('adding matured outcomes changes only the runs whose window they fall in; estimates stay as first computed', async () => {
    const p1 = await publishedAt(t, run1);
    const p2 = await publishedAt(t, run2);
    const asOf = new Date(p1.getTime() + 100 * day);
    const before = await t.pool.query(`SELECT * FROM scoring.model_performance ORDER BY run_id, band NULLS FIRST`);
    const again = await syncOutcomes(t.pool, { schema: 'scoring', modelDir: dir, asOf });
    expect(again.map((s) => s.outcome)).toEqual(['unchanged', 'unchanged']);

    // A churn just inside run 2's horizon, which closed for run 1 a moment earlier, of a customer seen as negative so far.
    const negative = await t.pool.query<{ customer_id: string }>(
      `SELECT o.customer_id FROM customer_outcomes o WHERE NOT o.label ORDER BY o.customer_id LIMIT 1`,
    );
    const late = new Date(p2.getTime() + 90 * day - 1);
    expect(late.getTime()).toBeGreaterThan(p1.getTime() + 90 * day);
    await t.pool.query(`INSERT INTO customer_outcomes (customer_id, event_time, label) VALUES ($1, $2, true)`, [negative.rows[0]!.customer_id, late]);
    const synced = await syncOutcomes(t.pool, { schema: 'scoring', modelDir: dir, asOf });
    expect(synced.map((s) => [s.runId, s.outcome])).toEqual([
      [run1, 'unchanged'],
      [run2, 'synced'],
    ]);

    const after = await t.pool.query(`SELECT * FROM scoring.model_performance ORDER BY run_id, band NULLS FIRST`);
    expect(after.rows.filter((r) => String(r.run_id) === run1)).toEqual(before.rows.filter((r) => String(r.run_id) === run1));
    const whole = (rows: any[]) => rows.find((r) => String(r.run_id) === run2 && r.band === null);
    expect(Number(whole(after.rows).positives)).toBe(Number(whole(before.rows).positives) + 1);
    expect(whole(after.rows).auc).not.toBe(whole(before.rows).auc);
    expect(whole(after.rows).estimated_auc).toBe(whole(before.rows).estimated_auc);
  });

  it('a run half way through its horizon says so, and counts only the outcomes matured by --as-of', async () => {
    const p1 = await publishedAt(t, run1);
    const synced = await syncOutcomes(t.pool, { schema: 'scoring', modelDir: dir, asOf: new Date(p1.getTime() + 45 * day) });
    expect(synced[0]!.maturity).toBeCloseTo(0.5, 3);
    const { rows } = await t.pool.query(`SELECT maturity, mature, coverage FROM scoring.model_performance WHERE run_id = $1 AND band IS NULL`, [run1]);
    expect(rows[0].mature).toBe(false);
    expect(rows[0].coverage).toBeGreaterThan(0.4);
    expect(rows[0].coverage).toBeLessThan(0.6);
    // Replaying the review at 100 days gives the mature figures back.
    await syncOutcomes(t.pool, { schema: 'scoring', modelDir: dir, asOf: new Date(p1.getTime() + 100 * day) });
    const mature = await t.pool.query(`SELECT mature, coverage FROM scoring.model_performance WHERE run_id = $1 AND band IS NULL`, [run1]);
    expect(mature.rows[0]).toEqual({ mature: true, coverage: 1 });
  });

  it('absent = negative: a mature run counts the customers without an outcome row as negatives, an immature one leaves them out', async () => {
    await t.pool.query(`CREATE TABLE churn_events AS SELECT customer_id, event_time AS churned_at FROM customer_outcomes WHERE label`);
    const churnDir = await modelWithOutcomes({
      query: 'SELECT customer_id, churned_at, true AS churned FROM churn_events',
      event_time: 'churned_at',
      label: 'churned',
      horizon: '90 days',
      absent: 'negative',
    });
    const p1 = await publishedAt(t, run1);
    await syncOutcomes(t.pool, { schema: 'scoring', modelDir: churnDir, asOf: new Date(p1.getTime() + 100 * day) });
    const { rows } = await t.pool.query(`SELECT coverage, positives, customers FROM scoring.model_performance WHERE run_id = $1 AND band IS NULL`, [run1]);
    expect(rows[0].coverage).toBe(1);
    const churned = await t.pool.query(
      `SELECT count(DISTINCT customer_id)::int n FROM churn_events e, scoring.score_runs r WHERE r.run_id = $1 AND e.churned_at > r.published_at AND e.churned_at <= r.published_at + interval '90 days'`,
      [run1],
    );
    expect(Number(rows[0].positives)).toBe(churned.rows[0].n);
    await syncOutcomes(t.pool, { schema: 'scoring', modelDir: churnDir, asOf: new Date(p1.getTime() + 30 * day) });
    const early = await t.pool.query(`SELECT with_outcome, positives FROM scoring.model_performance WHERE run_id = $1 AND band IS NULL`, [run1]);
    expect(early.rows[0].with_outcome).toBe(early.rows[0].positives);
  });

  it('a manifest whose outcomes table does not exist is a one-line usage error naming the field and the database', async () => {
    const missing = await modelWithOutcomes({ table: 'no_such_outcomes', horizon: '90 days' });
    const err = await syncOutcomes(t.pool, { schema: 'scoring', modelDir: missing }).catch((e: unknown) => e);
    expect(err).toMatchObject({ exitCode: 2 });
    expect((err as Error).message).toMatch(
      /^outcomes\.table "no_such_outcomes" in database postgres@127\.0\.0\.1:\d+\/sj_test_\w+: relation "no_such_outcomes" does not exist/,
    );
  });

  it('performanceGate: a breach names the run, its AUC and the way past it; none above the bar or before any run matured', async () => {
    const p1 = await publishedAt(t, run1);
    await syncOutcomes(t.pool, { schema: 'scoring', modelDir: dir, asOf: new Date(p1.getTime() + 100 * day) });
    const auc = (await t.pool.query('SELECT auc FROM scoring.model_performance WHERE run_id = $1 AND band IS NULL', [run2])).rows[0].auc as number;
    const c = await t.pool.connect();
    try {
      const breach = await performanceGate(c, { schema: 'scoring' }, 'customer-value', auc + 0.01);
      expect(breach).toBe(
        `the realised AUC of model "customer-value" fell to ${auc.toFixed(4)} (run ${run2}, 3000 customers with a matured outcome), below --min-auc ${auc + 0.01}: publish with \`scorejob publish <run-id> --force --reason TEXT\` once reviewed, or retrain the model`,
      );
      expect(await performanceGate(c, { schema: 'scoring' }, 'customer-value', auc - 0.01)).toBeUndefined();
      // Before the horizon passed for any run there is nothing to judge by.
      await syncOutcomes(t.pool, { schema: 'scoring', modelDir: dir, asOf: new Date(p1.getTime() + 30 * day) });
      expect(await performanceGate(c, { schema: 'scoring' }, 'customer-value', 0.99)).toBeUndefined();
    } finally {
      c.release();
    }
  });

  it('a customer with several outcome rows in the window counts once: positive if any is, else negative if any is, else without an outcome', async () => {
    const p1 = await publishedAt(t, run1);
    const asOf = new Date(p1.getTime() + 100 * day);
    await t.pool.query(`CREATE TABLE repeat_outcomes AS SELECT customer_id, event_time, label FROM customer_outcomes`);
    const window = `o.event_time > r.published_at AND o.event_time <= least(r.published_at + interval '90 days', $2)`;
    const before = await t.pool.query<{ customer_id: string; label: boolean }>(
      `SELECT o.customer_id::text, bool_or(o.label) AS label FROM repeat_outcomes o, scoring.score_runs r
        WHERE r.run_id = $1 AND ${window} GROUP BY o.customer_id ORDER BY o.customer_id`,
      [run1, asOf],
    );
    const [turnsPositive, staysNegative, loses] = before.rows.filter((r) => !r.label).map((r) => r.customer_id);
    const staysPositive = before.rows.find((r) => r.label)!.customer_id;
    const inWindow = new Date(p1.getTime() + 10 * day);
    await t.pool.query(`UPDATE repeat_outcomes SET label = NULL WHERE customer_id = $1`, [loses]);
    await t.pool.query(`INSERT INTO repeat_outcomes VALUES ($1, $5, true), ($2, $5, false), ($3, $5, NULL), ($4, $5, NULL), ($1, $5, false)`, [
      turnsPositive,
      staysPositive,
      staysNegative,
      loses,
      inWindow,
    ]);
    await syncOutcomes(t.pool, { schema: 'scoring', modelDir: await modelWithOutcomes({ table: 'repeat_outcomes', horizon: '90 days' }), asOf });

    const joined = await t.pool.query<{ p: number; y: number }>(
      `SELECT h.score::float8 AS p, bool_or(o.label)::int AS y
         FROM scoring.customer_score_history h JOIN repeat_outcomes o ON o.customer_id = h.customer_id JOIN scoring.score_runs r ON r.run_id = h.run_id
        WHERE h.run_id = $1 AND ${window}
        GROUP BY h.customer_id, h.score HAVING bool_or(o.label) IS NOT NULL`,
      [run1, asOf],
    );
    const ref = reference(joined.rows);
    const { rows } = await t.pool.query(`SELECT with_outcome, positives, auc, ks, brier FROM scoring.model_performance WHERE run_id = $1 AND band IS NULL`, [
      run1,
    ]);
    expect(Number(rows[0].with_outcome)).toBe(before.rows.length - 1);
    expect(Number(rows[0].positives)).toBe(before.rows.filter((r) => r.label).length + 1);
    expect(Number(rows[0].with_outcome)).toBe(joined.rows.length);
    expect(Number(rows[0].positives)).toBe(ref.positives);
    expect(rows[0].auc).toBeCloseTo(ref.auc, 6);
    expect(rows[0].ks).toBeCloseTo(ref.ks, 6);
    expect(rows[0].brier).toBeCloseTo(ref.brier, 6);
  });
});
