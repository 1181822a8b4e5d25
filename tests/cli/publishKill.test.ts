import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults } from '../../src/config.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { startCli, waitForLog } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runInProcess } from '../helpers/run.js';
import { expectResumeRestores, publishedSnapshot } from '../helpers/state.js';

describe('a publish held at a known point, then killed', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 2000, seed: 17 });
    await runInProcess(t, { chunkSize: defaults.chunkSize });
  });
  afterAll(async () => t.drop());

  it('waits for a reader transaction older than its attach; SIGKILL there leaves readers on the previous run, and resume publishes', async () => {
    const baseline = await publishedSnapshot(t);
    // A reader transaction that began before the run was planned: publish must wait for it to end.
    const old = await t.pool.connect();
    let runId: string;
    try {
      await old.query('BEGIN');
      await old.query('SELECT count(*) FROM scoring.customer_scores');
      const child = startCli(['run', '--chunk-size', '500'], t.env);
      const waiting = await waitForLog(child, (l) => /reader transaction\(s\) older than this run/.test(String(l.msg)));
      runId = waiting.run_id as string;
      // Every chunk is done and the run's table is attached; only the pointer has not moved.
      const chunks = await t.pool.query<{ pending: number }>(
        `SELECT count(*) FILTER (WHERE status <> 'done')::int AS pending FROM scoring.score_chunks WHERE run_id = $1`,
        [runId],
      );
      expect(chunks.rows[0]?.pending).toBe(0);
      child.kill('SIGKILL');
      await child.result;
      expect(await publishedSnapshot(t)).toEqual(baseline);
      const inOld = await old.query<{ n: string }>('SELECT count(*) n FROM scoring.customer_scores');
      expect(Number(inOld.rows[0]?.n)).toBe(baseline.scores.size);
      await old.query('COMMIT');
    } finally {
      old.release();
    }
    expect(await publishedSnapshot(t)).toEqual(baseline);
    await expectResumeRestores(t, runId, baseline);
  });
});
