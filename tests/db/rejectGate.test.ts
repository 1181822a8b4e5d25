import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runInProcess } from '../helpers/run.js';
import { publishedSnapshot } from '../helpers/state.js';

/** The largest double below x (x > 0): the tightest limit a ratio equal to x is over. */
function below(x: number): number {
  const b = new Float64Array([x]);
  new BigInt64Array(b.buffer)[0]! -= 1n;
  return b[0] as number;
}

/** README "Publish gates": --max-reject-ratio is the largest share of rejected rows that still publishes. */
describe('the reject gate at its limit', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 200, seed: 8, nullFraction: 0 });
    // 2 of 200 rows cannot be scored (tenure_months has no fill): a reject ratio of exactly 1%.
    await t.pool.query('UPDATE customers SET tenure_months = NULL WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY 1 LIMIT 2)');
  });
  afterAll(async () => t.drop());

  it('a reject ratio equal to --max-reject-ratio publishes', async () => {
    const r = await runInProcess(t, { maxRejectRatio: 0.01 });
    expect({ scored: r.rowsScored, rejected: r.rowsRejected, published: r.published }).toEqual({ scored: 198, rejected: 2, published: true });
    expect((await publishedSnapshot(t)).runs).toEqual([r.runId]);
  });

  it('the same through the CLI: --max-reject-ratio 0.01 with 1.00% rejected exits 0 and publishes', async () => {
    const r = await runCli(['run', '--max-reject-ratio', '0.01'], t.env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const run = await t.pool.query<{ run_id: string; status: string }>('SELECT run_id::text, status FROM scoring.score_runs ORDER BY run_id DESC LIMIT 1');
    expect(run.rows[0]?.status).toBe('succeeded');
    expect((await publishedSnapshot(t)).runs).toEqual([run.rows[0]?.run_id]);
  });

  it('a limit the smallest step below the ratio fails the run, unpublished', async () => {
    const before = await publishedSnapshot(t);
    await expect(runInProcess(t, { maxRejectRatio: below(0.01) })).rejects.toThrow(
      /rejected 1\.00% of rows \(2 of 200\), over the limit of 1\.00% \(--max-reject-ratio\)/,
    );
    const run = await t.pool.query('SELECT status, error_kind FROM scoring.score_runs ORDER BY run_id DESC LIMIT 1');
    expect(run.rows[0]).toEqual({ status: 'failed', error_kind: 'gate' });
    expect(await publishedSnapshot(t)).toEqual(before);
  });

  it('--max-reject-ratio 0 publishes only a run without rejects', async () => {
    await expect(runInProcess(t, { maxRejectRatio: 0 })).rejects.toThrow(/over the limit of 0\.000%/);
    await t.pool.query('UPDATE customers SET tenure_months = 12 WHERE tenure_months IS NULL');
    const r = await runInProcess(t, { maxRejectRatio: 0 });
    expect({ rejected: r.rowsRejected, published: r.published }).toEqual({ rejected: 0, published: true });
  });
});
