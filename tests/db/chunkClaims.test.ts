import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { withTransaction } from '../../src/db/sql.js';
import { ChunkClaims } from '../../src/ledger/chunkClaims.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { reopenChunks, runInProcess } from '../helpers/run.js';

/**
 * The claim rules of shared runs (src/ledger/chunkClaims.ts), on a real run's chunks taken back to
 * pending: one worker per chunk, a lease that lapses, a fence that refuses a stale claim, a failed chunk.
 */
describe('chunk claims', () => {
  let t: TestDatabase;
  let runId: string;
  const claims = new ChunkClaims('scoring');
  const a = { host: 'host-a', pid: 1 };
  const b = { host: 'host-b', pid: 2 };

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 2000, seed: 3 });
    runId = (await runInProcess(t, { chunkSize: 500, dryRun: true })).runId;
  });
  afterAll(async () => t.drop());

  const reopen = () => reopenChunks(t.pool, runId);

  it('two workers claiming at once get different chunks, in order; none is claimed twice while its lease runs', async () => {
    await reopen();
    const got = await Promise.all([
      claims.claim(t.pool, runId, a, 60_000),
      claims.claim(t.pool, runId, b, 60_000),
      claims.claim(t.pool, runId, a, 60_000),
      claims.claim(t.pool, runId, b, 60_000),
    ]);
    expect(got.map((c) => c?.chunkNo).sort()).toEqual([1, 2, 3, 4]);
    expect(await claims.claim(t.pool, runId, a, 60_000)).toBeUndefined();
  });

  it('an expired lease is taken over, counted as an attempt; the old claim can neither renew nor pass the fence, the new one can', async () => {
    await reopen();
    const stale = (await claims.claim(t.pool, runId, a, 1)) as NonNullable<Awaited<ReturnType<typeof claims.claim>>>;
    await new Promise((r) => setTimeout(r, 20));
    const fresh = (await claims.claim(t.pool, runId, b, 60_000)) as NonNullable<Awaited<ReturnType<typeof claims.claim>>>;
    expect(fresh.chunkNo).toBe(stale.chunkNo);
    expect(fresh.takenFrom).toEqual(a);
    expect(await claims.renew(t.pool, runId, stale, 60_000)).toBe(false);
    const client = await t.pool.connect();
    try {
      expect(await withTransaction(client, (c) => claims.holds(c, runId, stale))).toBe(false);
      expect(await withTransaction(client, (c) => claims.holds(c, runId, fresh))).toBe(true);
    } finally {
      client.release();
    }
    const { rows } = await t.pool.query(`SELECT attempts, claim_host, last_error FROM scoring.score_chunks WHERE run_id = $1 AND chunk_no = $2`, [
      runId,
      fresh.chunkNo,
    ]);
    expect(rows[0]).toMatchObject({ attempts: 1, claim_host: 'host-b' });
    expect(rows[0].last_error).toMatch(/lease of pid 1 on host-a expired/);
  });

  it('a chunk failed for good stops the claims and is reported with its worker; a run that is not running has nothing to claim', async () => {
    await reopen();
    const c = (await claims.claim(t.pool, runId, a, 60_000)) as NonNullable<Awaited<ReturnType<typeof claims.claim>>>;
    await claims.markFailed(t.pool, runId, c, 'boom');
    const state = await claims.state(t.pool, runId);
    expect(state.failed).toMatchObject({ chunkNo: c.chunkNo, host: 'host-a', pid: 1, error: 'boom' });
    await claims.reset(t.pool, runId);
    expect((await claims.state(t.pool, runId)).failed).toBeUndefined();
    await t.pool.query(`UPDATE scoring.score_runs SET status = 'interrupted' WHERE run_id = $1`, [runId]);
    expect(await claims.claim(t.pool, runId, b, 60_000)).toBeUndefined();
  });

  it('once a chunk failed for good no chunk is claimed; a claim carries the attempts so far, given up at the limit; a restart counts them afresh', async () => {
    await reopen();
    const first = (await claims.claim(t.pool, runId, a, 1)) as NonNullable<Awaited<ReturnType<typeof claims.claim>>>;
    expect(first.attempts).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    // a's lease lapsed (it died): b takes the chunk over with one attempt counted.
    const taken = (await claims.claim(t.pool, runId, b, 60_000)) as NonNullable<Awaited<ReturnType<typeof claims.claim>>>;
    expect([taken.chunkNo, taken.attempts]).toEqual([first.chunkNo, 1]);
    await claims.giveUp(t.pool, runId, taken, 1);
    const { rows } = await t.pool.query(`SELECT failed, last_error FROM scoring.score_chunks WHERE run_id = $1 AND chunk_no = $2`, [runId, taken.chunkNo]);
    expect(rows[0].failed).toBe(true);
    expect(rows[0].last_error).toMatch(/^1 attempt across workers \(--chunk-attempts 1\); the last: the lease of pid 1 on host-a expired/);
    expect(await claims.claim(t.pool, runId, a, 60_000)).toBeUndefined();
    // A coordinator (re)starts: the mark is cleared and the chunk's attempts count from zero again.
    await claims.reset(t.pool, runId);
    const again = (await claims.claim(t.pool, runId, a, 60_000)) as NonNullable<Awaited<ReturnType<typeof claims.claim>>>;
    expect([again.chunkNo, again.attempts]).toEqual([taken.chunkNo, 0]);
  });
});
