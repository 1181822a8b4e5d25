import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { chunkState, holdChunk } from '../helpers/holdChunk.js';
import { resumeInProcess, runInProcess } from '../helpers/run.js';
import { publishedSnapshot, rejectLines, seedWithRejects } from '../helpers/state.js';

/**
 * A chunk commits whole, in-process (so that mutation testing sees it): a chunk's scores, rejects
 * and done mark commit in one transaction. The run is held inside chunk 3's transaction, after its
 * scores and rejects are written, and its writer connection is cut there.
 */
describe('a chunk commits whole or not at all', () => {
  let t: TestDatabase;
  let baseline: Awaited<ReturnType<typeof publishedSnapshot>>;
  let baselineRejects: string[];
  const rejects = (runId: string) => rejectLines(t, runId);

  beforeAll(async () => {
    t = await createTestDatabase();
    // Rejects in every chunk: every 150th customer lacks tenure_months (no fill).
    await seedWithRejects(t, 3000, 17);
    const clean = await runInProcess(t, { chunkSize: 500 });
    baseline = await publishedSnapshot(t);
    baselineRejects = await rejects(clean.runId);
    expect(baselineRejects).toHaveLength(20);
  });
  afterAll(async () => t.drop());

  it('the writer lost after writing a chunk, before its commit: the chunk is pending, none of its scores or rejects visible; resume gives the clean run', async () => {
    const hold = await holdChunk(t, 3);
    let runId: string;
    try {
      const running = runInProcess(t, { chunkSize: 500, chunkAttempts: 1 });
      const outcome = running.then(
        () => 'succeeded',
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      );
      await hold.reached();
      await hold.endJobSessions(['writer']);
      expect(await outcome).toMatch(/failed: connection .* lost/);
      runId = (await t.pool.query<{ id: string }>('SELECT max(run_id)::text id FROM scoring.score_runs')).rows[0]?.id as string;
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

    const resumed = await resumeInProcess(t, runId);
    expect(resumed.runId).toBe(runId);
    const after = await publishedSnapshot(t);
    expect(after.runs).toEqual([runId]);
    expect(after.scores).toEqual(baseline.scores);
    expect(await rejects(runId)).toEqual(baselineRejects);
  });

  it('the same loss with attempts left: the chunk is retried, its failed attempt recorded, and the run publishes the clean run', async () => {
    const hold = await holdChunk(t, 3);
    let outcome: Promise<string>;
    try {
      outcome = runInProcess(t, { chunkSize: 500, chunkAttempts: 3 }).then(
        (r) => r.runId,
        (e: unknown) => `failed: ${e instanceof Error ? e.message : String(e)}`,
      );
      await hold.reached();
      await hold.endJobSessions(['writer']);
    } finally {
      await hold.release();
    }
    const runId = await outcome;
    expect(runId).toMatch(/^\d+$/);
    const chunk = await t.pool.query<{ status: string; attempts: number; last_error: string | null }>(
      'SELECT status, attempts, last_error FROM scoring.score_chunks WHERE run_id = $1 AND chunk_no = 3',
      [runId],
    );
    expect(chunk.rows[0]).toEqual({ status: 'done', attempts: 2, last_error: null });
    const others = await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.score_chunks WHERE run_id = $1 AND chunk_no <> 3 AND attempts <> 1', [
      runId,
    ]);
    expect(others.rows[0]?.n).toBe(0);
    const after = await publishedSnapshot(t);
    expect(after.runs).toEqual([runId]);
    expect(after.scores).toEqual(baseline.scores);
    expect(await rejects(runId)).toEqual(baselineRejects);
  });
});
