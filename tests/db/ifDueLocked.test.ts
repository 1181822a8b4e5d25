import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runInProcess } from '../helpers/run.js';

/**
 * `--if-due` checks the ledger before taking the run lock; another host's whole run can fit between
 * that check and the lock. The run checks again once it holds the lock.
 */
describe('--if-due, checked again under the lock', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 300, seed: 6 });
  });
  afterAll(async () => t.drop());

  it('a tick that got its succeeded run meanwhile: nothing to do (exit 0), no run recorded', async () => {
    const tickAt = new Date(Date.now() - 60_000);
    const dueCheck = { expression: '* * * * *', timezone: 'UTC' };
    const first = await runInProcess(t, { tickAt, dueCheck, trigger: 'cron' });
    expect(first.status).toBe('succeeded');
    // The second one "passed" its --if-due check before the first finished; now it holds the lock.
    await expect(runInProcess(t, { tickAt, dueCheck, trigger: 'cron' })).rejects.toMatchObject({
      exitCode: 0,
      message: expect.stringMatching(/^not due any more/),
    });
    const runs = await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.score_runs');
    expect(runs.rows[0]?.n).toBe(1);
  });
});
