import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCli, waitForLog } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runInProcess } from '../helpers/run.js';
import { chunkState, holdChunk } from '../helpers/holdChunk.js';
import { expectResumeRestores, publishedSnapshot, rejectLines, seedWithRejects } from '../helpers/state.js';

/**
 * A chunk's scores, rejects and done mark commit together, under kill -9, deterministically: the job is held inside chunk 3's
 * transaction (its scores and rejects written, the done mark waiting on a lock the test holds) and
 * killed exactly there.
 */
describe('SIGKILL inside a chunk transaction', () => {
  let t: TestDatabase;
  let baseline: Awaited<ReturnType<typeof publishedSnapshot>>;
  let baselineRejects: string[];
  const rejects = (runId: string) => rejectLines(t, runId);

  beforeAll(async () => {
    t = await createTestDatabase();
    // Rejects in every chunk: every 150th customer lacks tenure_months (no fill).
    await seedWithRejects(t, 3000, 19);
    await runInProcess(t, { chunkSize: 500 });
    baseline = await publishedSnapshot(t);
    baselineRejects = await rejects(baseline.runs[0] as string);
    expect(baselineRejects).toHaveLength(20);
  });
  afterAll(async () => t.drop());

  it('leaves none of the chunk visible and the chunk pending; readers keep the previous run; resume gives the same table as a clean run', async () => {
    const hold = await holdChunk(t, 3);
    let runId: string;
    try {
      const child = startCli(['run', '--chunk-size', '500'], t.env);
      const started = waitForLog(child, (l) => typeof l.run_id === 'string' && /started/.test(String(l.msg)));
      started.catch(() => undefined); // awaited below, once the job is held
      await hold.reached();
      runId = (await started).run_id as string;
      child.kill('SIGKILL');
      expect((await child.result).signal).toBe('SIGKILL');
      // The killed client's session waits at the hold: end it as the server would once it notices.
      await hold.endJobSessions();
    } finally {
      await hold.release();
    }
    const chunk = await chunkState(t, runId, 3);
    const expectedRejects = await t.pool.query<{ n: number }>(
      'SELECT count(*)::int n FROM customers WHERE tenure_months IS NULL AND customer_id > $1 AND customer_id <= $2',
      [chunk.lo, chunk.hi],
    );
    expect(expectedRejects.rows[0]?.n).toBeGreaterThan(0); // the chunk had rejects to write
    expect(chunk).toMatchObject({ status: 'pending', in_chunk_scores: 0, in_chunk_rejects: 0 });
    expect(chunk.done_scored).toBeGreaterThan(0);
    expect({ scores: chunk.scores, rejects: chunk.rejects }).toEqual({ scores: chunk.done_scored, rejects: chunk.done_rejected });
    expect(await publishedSnapshot(t)).toEqual(baseline);

    const after = await expectResumeRestores(t, runId, baseline);
    expect(after.scores).toEqual(baseline.scores);
    expect(await rejects(runId)).toEqual(baselineRejects);
  });
});
