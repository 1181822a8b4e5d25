import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { independentScores, modelCopy, runInProcess } from '../helpers/run.js';
import { publishedSnapshot } from '../helpers/state.js';

async function published(t: TestDatabase): Promise<Map<string, number>> {
  return (await publishedSnapshot(t)).scores;
}

describe('a full scoring run', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 5000, seed: 11 });
  });
  afterAll(async () => t.drop());

  it('publishes, for every customer exactly once, the score the model itself predicts (1e-5)', async () => {
    const result = await runInProcess(t, { chunkSize: 700 });
    expect(result.rowsScored + result.rowsRejected).toBe(5000);
    const expected = await independentScores(t.pool);
    const got = await published(t);
    const dupes = await t.pool.query<{ n: string }>('SELECT count(*) - count(DISTINCT customer_id) AS n FROM scoring.customer_scores');
    expect(dupes.rows[0]?.n).toBe('0');
    expect(got.size).toBe(expected.size);
    expect(got.size).toBe(result.rowsScored);
    let worst = 0;
    for (const [k, v] of expected) {
      const g = got.get(k);
      expect(g, `customer ${k}`).toBeDefined();
      worst = Math.max(worst, Math.abs((g as number) - v));
    }
    expect(worst).toBeLessThan(1e-5);
    const meta = await t.pool.query('SELECT DISTINCT run_id::text, model_version FROM scoring.customer_scores');
    expect(meta.rows).toEqual([{ run_id: result.runId, model_version: '1.0.0' }]);
  });

  it('plans balanced chunks over a key sequence with gaps', async () => {
    const r = await runInProcess(t, { chunkSize: 1000 });
    const chunks = await t.pool.query<{ rows_scored: number; rows_rejected: number; key_lo: string; key_hi: string }>(
      'SELECT rows_scored, rows_rejected, key_lo, key_hi FROM scoring.score_chunks WHERE run_id = $1 ORDER BY chunk_no',
      [r.runId],
    );
    expect(chunks.rows).toHaveLength(5);
    for (const c of chunks.rows) expect(c.rows_scored + c.rows_rejected).toBe(1000);
    const span = await t.pool.query<{ lo: string; hi: string; n: string }>('SELECT min(customer_id) lo, max(customer_id) hi, count(*) n FROM customers');
    expect(Number(span.rows[0]?.hi) - Number(span.rows[0]?.lo)).toBeGreaterThan(2 * Number(span.rows[0]?.n)); // real gaps
  });

  it('two successive runs: the view shows the second, history holds both', async () => {
    const before = await t.pool.query<{ run_id: string }>('SELECT DISTINCT run_id::text FROM scoring.customer_score_history');
    const r = await runInProcess(t);
    const view = await t.pool.query<{ run_id: string }>('SELECT DISTINCT run_id::text FROM scoring.customer_scores');
    expect(view.rows).toEqual([{ run_id: r.runId }]);
    const history = await t.pool.query<{ run_id: string; n: string }>(
      'SELECT run_id::text, count(*) n FROM scoring.customer_score_history GROUP BY 1 ORDER BY 1',
    );
    expect(history.rows.map((h) => h.run_id)).toEqual([...before.rows.map((b) => b.run_id), r.runId].sort((a, b) => Number(a) - Number(b)));
    for (const h of history.rows) expect(Number(h.n)).toBe(r.rowsScored);
  });

  it('with --keep-runs 1 only the newest run stays in history', async () => {
    const r = await runInProcess(t, { keepRuns: 1 });
    const history = await t.pool.query<{ run_id: string }>('SELECT DISTINCT run_id::text FROM scoring.customer_score_history');
    expect(history.rows).toEqual([{ run_id: r.runId }]);
    const tables = await t.pool.query<{ n: string }>(`SELECT count(*) n FROM pg_tables WHERE schemaname = 'scoring' AND tablename LIKE 'score\\_data\\_%'`);
    expect(tables.rows[0]?.n).toBe('1');
    const runs = await t.pool.query<{ n: string }>(`SELECT count(*) n FROM scoring.score_runs WHERE status = 'succeeded'`);
    expect(Number(runs.rows[0]?.n)).toBeGreaterThan(1); // the ledger keeps every run; only scores are dropped
  });

  it('a dry run scores everything and publishes nothing', async () => {
    const before = await published(t);
    const r = await runInProcess(t, { dryRun: true });
    expect(r.rowsScored).toBeGreaterThan(0);
    expect(r.published).toBe(false);
    expect(await published(t)).toEqual(before);
    const run = await t.pool.query('SELECT status, dry_run, published_at FROM scoring.score_runs WHERE run_id = $1', [r.runId]);
    expect(run.rows[0]).toMatchObject({ status: 'succeeded', dry_run: true, published_at: null });
  });

  it('a concurrent reader sees exactly the previous complete run while a run is in progress', async () => {
    const previous = await published(t);
    const prevRun = (await t.pool.query<{ run_id: string }>('SELECT run_id::text FROM scoring.published_run')).rows[0]?.run_id;
    const reader = await t.pool.connect();
    // Every poll is collected; the assertions run after the reader stopped (none inside the loop's promise).
    const polls: { run_id: string; n: number }[][] = [];
    let running = true;
    const poll = (async () => {
      while (running) {
        const { rows } = await reader.query<{ run_id: string; n: string }>('SELECT run_id::text, count(*) n FROM scoring.customer_scores GROUP BY 1');
        polls.push(rows.map((r) => ({ run_id: r.run_id, n: Number(r.n) })));
      }
    })();
    let r: Awaited<ReturnType<typeof runInProcess>>;
    try {
      r = await runInProcess(t, { chunkSize: 250 });
    } finally {
      running = false;
      await poll.catch(() => undefined);
      reader.release();
    }
    expect(polls.length).toBeGreaterThan(3);
    const expected = (p: { run_id: string; n: number }[]): boolean =>
      p.length === 1 && ((p[0]?.run_id === prevRun && p[0]?.n === previous.size) || (p[0]?.run_id === r.runId && p[0]?.n === r.rowsScored));
    expect(polls.filter((p) => !expected(p))).toEqual([]);
    expect(polls.some((p) => p[0]?.run_id === prevRun)).toBe(true);
    const { rows } = await t.pool.query<{ run_id: string; n: string }>('SELECT run_id::text, count(*) n FROM scoring.customer_scores GROUP BY 1');
    expect(rows).toEqual([{ run_id: r.runId, n: String(r.rowsScored) }]);
  });

  it('readers query by customer_id through the index of one partition', async () => {
    const { rows } = await t.pool.query<{ 'QUERY PLAN': string }>(
      'EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM scoring.customer_scores WHERE customer_id = 12345',
    );
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(/Index Scan using score_data_\d+_pkey/);
  });
});

describe('small and special sources', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t.drop());

  it('a table smaller than one chunk is one chunk', async () => {
    await seedCustomers(t.pool, { customers: 37, seed: 3, nullFraction: 0 });
    const r = await runInProcess(t, { chunkSize: 50_000 });
    expect(r.rowsScored).toBe(37);
    const chunks = await t.pool.query('SELECT count(*)::int n FROM scoring.score_chunks WHERE run_id = $1', [r.runId]);
    expect(chunks.rows[0]).toEqual({ n: 1 });
  });

  it('an empty table is refused with exit 2 and nothing is written', async () => {
    const before = await t.pool.query('SELECT count(*)::int n FROM scoring.score_runs');
    await t.pool.query('TRUNCATE customers');
    const r = await runCliInProcess(['run'], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('has no rows');
    const after = await t.pool.query('SELECT count(*)::int n FROM scoring.score_runs');
    expect(after.rows).toEqual(before.rows);
    const view = await t.pool.query('SELECT count(*)::int n FROM scoring.customer_scores');
    expect(view.rows[0]).toEqual({ n: 37 });
  });

  it('NULLs with and without fill, unknown categories and NaN/Infinity go where the manifest says', async () => {
    await seedCustomers(t.pool, { customers: 300, seed: 5, nullFraction: 0, replace: true });
    const ids = (await t.pool.query<{ id: string }>('SELECT customer_id::text id FROM customers ORDER BY 1 LIMIT 6')).rows.map((r) => r.id);
    const [nullFilled, nullNoFill, unknownCat, nan, inf, nullCat] = ids as [string, string, string, string, string, string];
    await t.pool.query('UPDATE customers SET days_since_last_order = NULL WHERE customer_id = $1', [nullFilled]); // fill 730
    await t.pool.query('UPDATE customers SET tenure_months = NULL WHERE customer_id = $1', [nullNoFill]); // no fill: reject
    await t.pool.query(`UPDATE customers SET segment = 'galactic' WHERE customer_id = $1`, [unknownCat]); // all zeros
    await t.pool.query(`ALTER TABLE customers ALTER COLUMN revenue_12m TYPE double precision`);
    await t.pool.query(`UPDATE customers SET revenue_12m = 'NaN' WHERE customer_id = $1`, [nan]);
    await t.pool.query(`UPDATE customers SET revenue_12m = '-Infinity' WHERE customer_id = $1`, [inf]);
    await t.pool.query(`UPDATE customers SET region = NULL WHERE customer_id = $1`, [nullCat]); // fill 'north'
    const r = await runInProcess(t, { maxRejectRatio: 0.05 });
    expect(r.rowsScored).toBe(297);
    expect(r.rowsRejected).toBe(3);
    const rejects = await t.pool.query<{ id: string; reason: string; column: string; value: string | null }>(
      `SELECT customer_id::text id, reason, detail->>'column' AS column, detail->>'value' AS value FROM scoring.score_rejects WHERE run_id = $1 ORDER BY 1`,
      [r.runId],
    );
    expect(rejects.rows).toEqual(
      [
        { id: nullNoFill, reason: 'null_without_fill', column: 'tenure_months', value: null },
        { id: nan, reason: 'non_finite', column: 'revenue_12m', value: 'NaN' },
        { id: inf, reason: 'non_finite', column: 'revenue_12m', value: '-Infinity' },
      ].sort((a, b) => Number(a.id) - Number(b.id)),
    );
    const expected = await independentScores(t.pool);
    const got = await published(t);
    expect(got.size).toBe(297);
    for (const id of [nullFilled, unknownCat, nullCat]) {
      expect(got.get(id)).toBeCloseTo(expected.get(id) as number, 5);
    }
  });

  it('a reject ratio over --max-reject-ratio fails the run without publishing, rejects kept', async () => {
    const before = await published(t);
    await t.pool.query(`UPDATE customers SET tenure_months = NULL WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY 1 LIMIT 30)`);
    const r = await runCliInProcess(['run', '--max-reject-ratio', '0.05'], t.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/over the limit of 5\.00% \(--max-reject-ratio\)/);
    expect(await published(t)).toEqual(before);
    const run = await t.pool.query<{ status: string; error_kind: string; n: number }>(
      `SELECT status, error_kind, (SELECT count(*)::int FROM scoring.score_rejects j WHERE j.run_id = r.run_id) n FROM scoring.score_runs r ORDER BY run_id DESC LIMIT 1`,
    );
    // 30 rows now lack tenure_months (the NaN and -Infinity rows among them: one reject per row)
    expect(run.rows[0]).toEqual({ status: 'failed', error_kind: 'gate', n: 30 });
  });
});

describe('bad models are refused before anything is written (exit 2)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 100, seed: 2 });
  });
  afterAll(async () => t.drop());

  async function expectRefused(modelDir: string, message: RegExp): Promise<void> {
    const r = await runCliInProcess(['run', '--model', modelDir], t.env);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const runs = await t.pool.query('SELECT count(*)::int n FROM scoring.score_runs');
    expect(runs.rows[0]).toEqual({ n: 0 });
  }

  it('a manifest naming a missing column', async () => {
    const dir = await modelCopy((m) => (m.features[0].column = 'tenure_years'));
    await expectRefused(dir, /has no column "?tenure_years"?/);
  });

  it('a model whose input width does not match the features', async () => {
    const dir = await modelCopy((m) => m.features.pop());
    await expectRefused(dir, /features in .*manifest\.json produce 23 inputs? but .*model\.json expects 24/);
  });

  it('a corrupted model.json', async () => {
    const dir = await modelCopy();
    await writeFile(join(dir, 'model.json'), '{"modelTopology": {"class_name": "Model", "con');
    await expectRefused(dir, /model\.json/);
  });
});
