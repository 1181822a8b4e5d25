import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger, type RunParams } from '../../src/ledger/ledger.js';
import { Publications } from '../../src/ledger/publications.js';
import { ScoreHistogram } from '../../src/stats/scoreCuts.js';
import { cutPointsFromHistogram } from '../../src/publish/cutPoints.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const sqlCuts = (table: string) =>
  `SELECT percentile_cont((SELECT array_agg(i / 100.0) FROM generate_series(1, 99) i)) WITHIN GROUP (ORDER BY score) AS cuts FROM ${table}`;

/**
 * Issue 16: the cut points from the chunks' histogram and one scan are the very figures
 * percentile_cont gives (README "The downstream contract" defines percentile by them).
 */
describe('percentile cut points from the histogram', () => {
  let t: TestDatabase;
  const ledger = new Ledger('scoring');
  let runId: string;

  beforeAll(async () => {
    t = await createTestDatabase();
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
    const c = await t.pool.connect();
    try {
      runId = await ledger.createRun(c, {
        trigger: 'manual',
        dryRun: false,
        modelName: 'cuts',
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
    } finally {
      c.release();
    }
  });
  afterAll(async () => t.drop());

  /** Replaces the run's scores by `values`, counts them into a histogram in chunks of 1,000, and compares both ways. */
  async function compare(values: Float32Array): Promise<void> {
    const table = ledger.runTable(runId);
    await t.pool.query(`TRUNCATE ${table}`);
    await t.pool.query(`INSERT INTO ${table} (customer_id, score) SELECT k, s FROM unnest($1::real[]) WITH ORDINALITY AS u(s, k)`, [
      Array.from(values, (v) => (Object.is(v, -0) ? '-0' : String(v))),
    ]);
    const histogram = new ScoreHistogram();
    for (let from = 0; from < values.length; from += 1000) {
      const chunk = values.slice(from, from + 1000);
      histogram.add(chunk, chunk.length);
    }
    const c = await t.pool.connect();
    try {
      const ours = (await cutPointsFromHistogram({ client: c, ledger, runId, histogram, total: values.length }))?.cuts;
      const theirs = (await c.query<{ cuts: number[] }>(sqlCuts(table))).rows[0]?.cuts;
      expect(ours).toHaveLength(99);
      // -0 and 0 are one value to PostgreSQL (and to width_bucket, which reads the cut points).
      const zeroless = (a: number[] | undefined) => a?.map((v) => (v === 0 ? 0 : v));
      expect(zeroless(ours)).toEqual(zeroless(theirs));
      await new Publications(ledger).recordRanks(c, runId, undefined, ours);
      const stored = await c.query<{ same: boolean }>(`SELECT score_cuts = (${sqlCuts(table)}) AS same FROM scoring.score_runs WHERE run_id = $1`, [runId]);
      expect(stored.rows[0]).toEqual({ same: true });
    } finally {
      c.release();
    }
  }

  it('equal percentile_cont on sigmoid-like scores, ties, negatives, zeros of both signs and tiny tables', async () => {
    let seed = 16;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    await compare(Float32Array.from({ length: 20000 }, () => 1 / (1 + Math.exp(-(random() - 0.5) * 0.2))));
    await compare(Float32Array.from({ length: 5000 }, () => Math.round(random() * 20) / 20));
    await compare(Float32Array.from({ length: 3001 }, (_, i) => (i % 3 === 0 ? -0 : i % 3 === 1 ? 0 : (random() - 0.5) * 1e6)));
    await compare(Float32Array.from({ length: 2000 }, () => (random() < 0.5 ? -1 : 1) * Math.exp((random() - 0.5) * 80)));
    for (const n of [1, 2, 3, 101]) await compare(Float32Array.from({ length: n }, () => random()));
  });

  it('when the histogram did not count every score of the run (a resume, an --only-new run), counts the run table itself: still percentile_cont', async () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const values = Float32Array.from({ length: 4000 }, () => 1 / (1 + Math.exp(-(random() - 0.5) * 4)));
    const table = ledger.runTable(runId);
    await t.pool.query(`TRUNCATE ${table}`);
    await t.pool.query(`INSERT INTO ${table} (customer_id, score) SELECT k, s FROM unnest($1::real[]) WITH ORDINALITY AS u(s, k)`, [
      Array.from(values, String),
    ]);
    const partial = new ScoreHistogram();
    partial.add(values.slice(0, 10), 10);
    const c = await t.pool.connect();
    try {
      const theirs = (await c.query<{ cuts: number[] }>(sqlCuts(table))).rows[0]?.cuts;
      expect((await cutPointsFromHistogram({ client: c, ledger, runId, histogram: partial, total: values.length }))?.cuts).toEqual(theirs);
      expect((await cutPointsFromHistogram({ client: c, ledger, runId, histogram: undefined, total: values.length }))?.cuts).toEqual(theirs);
      // A total the table does not hold (it cannot happen under the run's lock): the SQL sort decides.
      expect(await cutPointsFromHistogram({ client: c, ledger, runId, histogram: undefined, total: values.length + 1 })).toBeUndefined();
    } finally {
      c.release();
    }
  });
});
