import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import type { FeaturesSummary } from '../../src/stats/featureStats.js';
import type { Drift } from '../../src/stats/psi.js';
import type { ScoreSummary } from '../../src/stats/scoreStats.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runInProcess, shippedModelDir } from '../helpers/run.js';

interface Feature {
  column: string;
  transform: string;
  min?: number;
  max?: number;
  categories?: string[];
}

interface StoredStats {
  scores: ScoreSummary;
  features: FeaturesSummary;
  drift: Drift;
}

async function runStats(t: TestDatabase, runId: string): Promise<StoredStats> {
  const { rows } = await t.pool.query<{ stats: StoredStats }>('SELECT stats FROM scoring.score_runs WHERE run_id = $1', [runId]);
  return rows[0]?.stats as StoredStats;
}

/** Coarse (10-bin) counts of a published run's scores, binned in SQL exactly as the job bins them: 100 bins of 0.01, merged ten by ten. */
async function sqlDeciles(t: TestDatabase, runId: string): Promise<number[]> {
  const { rows } = await t.pool.query<{ b: number; n: number }>(
    `SELECT least(99, floor(score::float8 / 0.01::float8))::int / 10 AS b, count(*)::int AS n
       FROM scoring.customer_score_history WHERE run_id = $1 GROUP BY 1`,
    [runId],
  );
  const out = new Array<number>(10).fill(0);
  for (const r of rows) out[r.b] = r.n;
  return out;
}

/** The PSI formula of README.md ("Drift"), written out again here on purpose. */
function psiByHand(expected: number[], actual: number[]): number {
  const e = expected.reduce((a, b) => a + b, 0);
  const a = actual.reduce((x, y) => x + y, 0);
  return expected.reduce((sum, _, i) => {
    const p = Math.max((actual[i] as number) / a, 1e-4);
    const q = Math.max((expected[i] as number) / e, 1e-4);
    return sum + (p - q) * Math.log(p / q);
  }, 0);
}

describe('score and feature statistics of a run', () => {
  let t: TestDatabase;
  let features: Feature[];
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 5000, seed: 13 });
    // A few values outside the training range and unknown categories, for the feature counters to find.
    await t.pool.query('UPDATE customers SET tenure_months = 500 WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY 1 LIMIT 7)');
    await t.pool.query(`UPDATE customers SET segment = 'galactic' WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY 1 DESC LIMIT 4)`);
    await t.pool.query(`UPDATE customers SET discount_share = -0.5 WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY 1 OFFSET 100 LIMIT 3)`);
    features = (JSON.parse(await readFile(join(shippedModelDir, 'manifest.json'), 'utf8')) as { features: Feature[] }).features;
  });
  afterAll(async () => t.drop());

  it('equal those computed independently in SQL over the published table (moments to 1e-6, quantiles within one histogram bin)', async () => {
    const r = await runInProcess(t, { chunkSize: 700 });
    const { scores } = await runStats(t, r.runId);
    const { rows } = await t.pool.query<{ n: number; mean: number; std: number; min: number; max: number; q: number[] }>(
      `SELECT count(*)::int n, avg(score::float8) mean, stddev_pop(score::float8) std, min(score::float8) min, max(score::float8) max,
              percentile_cont(ARRAY[0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]) WITHIN GROUP (ORDER BY score::float8) q
         FROM scoring.customer_scores`,
    );
    const sql = rows[0]!;
    expect(scores.count).toBe(sql.n);
    expect(scores.count).toBe(r.rowsScored);
    expect(Math.abs((scores.mean as number) - sql.mean)).toBeLessThan(1e-6);
    expect(Math.abs((scores.std as number) - sql.std)).toBeLessThan(1e-6);
    expect(Math.abs((scores.min as number) - sql.min)).toBeLessThan(1e-6);
    expect(Math.abs((scores.max as number) - sql.max)).toBeLessThan(1e-6);
    const bin = (scores.histogram.hi - scores.histogram.lo) / scores.histogram.bins.length;
    ['p1', 'p5', 'p25', 'p50', 'p75', 'p95', 'p99'].forEach((k, i) => {
      expect(Math.abs((scores.quantiles[k] as number) - (sql.q[i] as number)), k).toBeLessThanOrEqual(bin + 1e-9);
    });
    // The summary line's mean is the same figure.
    expect(r.stats.mean).toBe(scores.mean);
  });

  it('per feature: NULL, outside the training range and unknown category fractions equal SQL counts over the source', async () => {
    const r = await runInProcess(t, { chunkSize: 900 });
    const stored = (await runStats(t, r.runId)).features;
    expect(stored.rows).toBe(5000);
    expect(stored.features.map((f) => f.column)).toEqual(features.map((f) => f.column));
    for (const f of features) {
      const col = `"${f.column}"`;
      const range = f.min !== undefined ? `${col}::float8 < $1::float8 OR ${col}::float8 > $2::float8` : 'false';
      const unknown = f.categories ? `${col} IS NOT NULL AND NOT (${col}::text = ANY($3::text[]))` : 'false';
      const { rows } = await t.pool.query<{ n: number; nulls: number; outside: number; unknown: number }>(
        `SELECT count(*)::int n, count(*) FILTER (WHERE ${col} IS NULL)::int nulls,
                count(*) FILTER (WHERE ${range})::int outside, count(*) FILTER (WHERE ${unknown})::int unknown
           FROM customers WHERE $1::float8 IS NOT NULL AND $2::float8 IS NOT NULL AND $3::text[] IS NOT NULL`, // every parameter used
        [f.min ?? 0, f.max ?? 0, f.categories ?? []],
      );
      const sql = rows[0]!;
      const got = stored.features.find((x) => x.column === f.column)!;
      expect(got.nulls, f.column).toBe(sql.nulls);
      expect(got.null_fraction, f.column).toBeCloseTo(sql.nulls / sql.n, 12);
      expect(got.below_min + got.above_max, f.column).toBe(sql.outside);
      expect(got.outside_range_fraction, f.column).toBeCloseTo(sql.outside / sql.n, 12);
      expect(got.unknown_category, f.column).toBe(sql.unknown);
      expect(got.unknown_category_fraction, f.column).toBeCloseTo(sql.unknown / sql.n, 12);
    }
    const get = (c: string) => stored.features.find((x) => x.column === c)!;
    expect(get('tenure_months')).toMatchObject({ above_max: 7, below_min: 0, min: 0, max: 120 });
    expect(get('discount_share')).toMatchObject({ below_min: 3 });
    expect(get('segment')).toMatchObject({ unknown_category: 4 });
    // Stored per chunk, beside the score statistics, so a resumed run's counters cover every chunk.
    const chunks = await t.pool.query<{ rows: number }>(
      `SELECT sum((stats->'features'->>'rows')::int)::int AS rows FROM scoring.score_chunks WHERE run_id = $1`,
      [r.runId],
    );
    expect(chunks.rows[0]?.rows).toBe(5000);
  });

  it('PSI of a run against the previous published run with the same scores is 0', async () => {
    const before = await t.pool.query<{ run_id: string }>('SELECT run_id::text FROM scoring.published_run');
    const r = await runInProcess(t);
    expect(r.psiBaselineRunId).toBe(before.rows[0]?.run_id);
    expect(r.psi).toBe(0);
    expect((await runStats(t, r.runId)).drift).toEqual({ psi: 0, baseline_run_id: before.rows[0]?.run_id, bins: 10, epsilon: 1e-4 });
  });

  it('PSI against a shifted distribution equals the formula applied to deciles binned in SQL over both published runs', async () => {
    const base = await runInProcess(t);
    await t.pool.query(
      'UPDATE customers SET days_since_last_order = days_since_last_order + 250, support_tickets_12m = support_tickets_12m + 2 WHERE customer_id % 2 = 0',
    );
    const r = await runInProcess(t);
    expect(r.psiBaselineRunId).toBe(base.runId);
    const expected = psiByHand(await sqlDeciles(t, base.runId), await sqlDeciles(t, r.runId));
    expect(expected).toBeGreaterThan(0.01);
    expect(r.psi).toBeCloseTo(expected, 12);
    // A dry run is never a baseline: the next run compares with the last published one.
    const dry = await runInProcess(t, { dryRun: true });
    expect(dry.psiBaselineRunId).toBe(r.runId);
    expect(dry.psi).toBe(0);
  });
});
