import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { resumeInProcess, runInProcess } from '../helpers/run.js';
import { judgePolls, publishedSnapshot, startReader } from '../helpers/state.js';
import { jobWaitsOnLock, waitUntil } from '../helpers/waitUntil.js';

/**
 * Complete or nothing (README "The downstream contract") at the publish: everything a publish changes commits in one transaction.
 * The test holds the publish at its pointer move (a lock on scoring.published_run that lets readers
 * through but makes the job's UPDATE wait), cuts the job's connection there, and checks that nothing of
 * the publish stayed behind, so that a resume publishes normally.
 */
describe('a publish commits whole or not at all', () => {
  let t: TestDatabase;
  let baseline: Awaited<ReturnType<typeof publishedSnapshot>>;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 2000, seed: 23 });
    await runInProcess(t, { chunkSize: 500 });
    baseline = await publishedSnapshot(t);
  });
  afterAll(async () => t.drop());

  it('the connection lost while moving the pointer: readers keep the previous run, the run is not succeeded, resume publishes it', async () => {
    const reader = startReader(t);
    const holder = new pg.Client({ connectionString: t.url });
    await holder.connect();
    let runId: string;
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE scoring.published_run IN EXCLUSIVE MODE'); // readers (ACCESS SHARE) pass; UPDATE waits
      const outcome = runInProcess(t, { chunkSize: 500, chunkAttempts: 1 }).then(
        () => 'succeeded',
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      );
      await jobWaitsOnLock(t.pool, ['ledger']);
      runId = (await t.pool.query<{ id: string }>('SELECT max(run_id)::text id FROM scoring.score_runs')).rows[0]?.id as string;
      await t.pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'scorejob ledger'`);
      await waitUntil(
        'the ledger session is gone',
        async () =>
          (
            await t.pool.query<{ n: number }>(
              `SELECT count(*)::int n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'scorejob ledger' AND wait_event_type = 'Lock'`,
            )
          ).rows[0]?.n === 0,
      );
      await holder.query('ROLLBACK');
      expect(await outcome).not.toBe('succeeded');
    } finally {
      await holder.end();
    }
    expect(await publishedSnapshot(t)).toEqual(baseline);
    const run = await t.pool.query<{ status: string; published: boolean }>(
      'SELECT status, published_at IS NOT NULL AS published FROM scoring.score_runs WHERE run_id = $1',
      [runId],
    );
    expect(run.rows[0]).not.toMatchObject({ status: 'succeeded' });
    expect(run.rows[0]?.published).toBe(false);

    const resumed = await resumeInProcess(t, runId);
    expect(resumed.published).toBe(true);
    const after = await publishedSnapshot(t);
    expect(after.runs).toEqual([runId]);
    expect(after.scores).toEqual(baseline.scores);
    const polls = await reader.stop();
    const { bad, sequence } = judgePolls(polls, [...baseline.runs, runId], baseline.scores.size);
    expect(bad).toEqual([]);
    expect(sequence).toEqual([...baseline.runs, runId]);
  });
});
