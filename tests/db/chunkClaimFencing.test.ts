import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { ChunkClaims, type ChunkClaim } from '../../src/ledger/chunkClaims.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { reopenChunks, runInProcess } from '../helpers/run.js';

/**
 * Claims and their fence beyond the first claim (src/ledger/chunkClaims.ts): what a claim carries, what a
 * worker that lost its claim can still write (nothing), giving a claim back, and which run a worker joins.
 */
describe('chunk claims: fencing and what a claim carries', () => {
  let t: TestDatabase;
  let runId: string;
  const claims = new ChunkClaims('scoring');
  const a = { host: 'host-a', pid: 11 };
  const b = { host: 'host-b', pid: 22 };

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 1500, seed: 5 });
    runId = (await runInProcess(t, { chunkSize: 500, dryRun: true })).runId;
  });
  afterAll(async () => t.drop());

  const reopen = () => reopenChunks(t.pool, runId);
  const chunkRow = async (chunkNo: number) =>
    (
      await t.pool.query<{ attempts: number; last_error: string | null; failed: boolean; claim_token: string | null; lease_ms: number | null }>(
        `SELECT attempts, last_error, failed, claim_token::text, (extract(epoch FROM lease_until - now()) * 1000)::int AS lease_ms
           FROM scoring.score_chunks WHERE run_id = $1 AND chunk_no = $2`,
        [runId, chunkNo],
      )
    ).rows[0];
  const claimOf = async (worker: { host: string; pid: number }, leaseMs = 60_000) => (await claims.claim(t.pool, runId, worker, leaseMs)) as ChunkClaim;
  const takeOver = async () => {
    const stale = await claimOf(a, 1);
    await new Promise((r) => setTimeout(r, 20));
    return { stale, fresh: await claimOf(b) };
  };

  it("a claim carries its chunk's key bounds and planned rows as the plan recorded them", async () => {
    await reopen();
    const { rows } = await t.pool.query<{ chunk_no: number; key_lo: string | null; key_hi: string | null; rows_planned: string | null }>(
      'SELECT chunk_no, key_lo::text, key_hi::text, rows_planned::text FROM scoring.score_chunks WHERE run_id = $1 ORDER BY chunk_no',
      [runId],
    );
    expect(rows.length).toBe(3);
    for (const r of rows) {
      const c = await claimOf(a);
      expect(c.chunkNo).toBe(r.chunk_no);
      expect(c.rows).toBe(r.rows_planned === null ? undefined : Number(r.rows_planned));
      expect(c.takenFrom).toBeUndefined();
      expect(c.attempts).toBe(0);
      expect(c.token).toMatch(/^[0-9a-f-]{36}$/);
      expect(String(c.lo ?? null)).toBe(String(r.key_lo));
      expect(String(c.hi ?? null)).toBe(String(r.key_hi));
    }
    expect(rows.reduce((n, r) => n + Number(r.rows_planned), 0)).toBe(1500);
    // A plan of a version that did not count rows: the claim says it does not know, not 0.
    await reopen();
    await t.pool.query('UPDATE scoring.score_chunks SET rows_planned = NULL WHERE run_id = $1 AND chunk_no = 1', [runId]);
    expect((await claimOf(a)).rows).toBeUndefined();
    await t.pool.query('UPDATE scoring.score_chunks SET rows_planned = 500 WHERE run_id = $1 AND chunk_no = 1', [runId]);
  });

  it('a lease is what the worker asked for, and a renewal extends it to the new length', async () => {
    await reopen();
    const c = await claimOf(a, 5_000);
    const first = (await chunkRow(c.chunkNo))?.lease_ms ?? 0;
    expect(first).toBeGreaterThan(3_000);
    expect(first).toBeLessThanOrEqual(5_000);
    expect(await claims.renew(t.pool, runId, c, 120_000)).toBe(true);
    const renewed = (await chunkRow(c.chunkNo))?.lease_ms ?? 0;
    expect(renewed).toBeGreaterThan(100_000);
    expect(renewed).toBeLessThanOrEqual(120_000);
  });

  it('a worker that lost its claim records nothing on the chunk; the holder records its failures there', async () => {
    await reopen();
    const { stale, fresh } = await takeOver();
    expect(fresh.takenFrom).toEqual({ host: 'host-a', pid: 11 });
    expect(await claims.stillHeld(t.pool, runId, stale)).toBe(false);
    expect(await claims.stillHeld(t.pool, runId, fresh)).toBe(true);
    const { lease_ms: _, ...before } = (await chunkRow(fresh.chunkNo))!;
    await claims.recordFailure(t.pool, runId, stale, 'stale says boom');
    await claims.markFailed(t.pool, runId, stale, 'stale fails it');
    await claims.giveUp(t.pool, runId, stale, 1);
    await claims.release(t.pool, runId, stale);
    expect(await chunkRow(fresh.chunkNo)).toMatchObject(before);
    await claims.recordFailure(t.pool, runId, fresh, 'deadlock detected');
    expect(await chunkRow(fresh.chunkNo)).toMatchObject({ attempts: 2, last_error: 'deadlock detected', failed: false, claim_token: fresh.token });
    // Failed for good: the error recorded first is kept, the run's state names the chunk and its worker.
    await claims.markFailed(t.pool, runId, fresh, 'a later error');
    expect(await chunkRow(fresh.chunkNo)).toMatchObject({ failed: true, last_error: 'deadlock detected' });
    expect(await claims.state(t.pool, runId)).toEqual({
      runStatus: 'running',
      pending: 3,
      failed: { chunkNo: fresh.chunkNo, host: 'host-b', pid: 22, error: 'deadlock detected' },
    });
  });

  it('a chunk given up after two attempts says "2 attempts"; one failed with no error says so', async () => {
    await reopen();
    const { fresh } = await takeOver();
    await claims.recordFailure(t.pool, runId, fresh, 'serialization failure');
    await claims.giveUp(t.pool, runId, fresh, 2);
    expect(await chunkRow(fresh.chunkNo)).toMatchObject({
      failed: true,
      last_error: '2 attempts across workers (--chunk-attempts 2); the last: serialization failure',
    });
    await reopen();
    const c = await claimOf(a);
    await claims.markFailed(t.pool, runId, c, 'the model failed');
    expect(await chunkRow(c.chunkNo)).toMatchObject({ failed: true, last_error: 'the model failed' });
  });

  it('a claim given back is claimed at once by another worker; a committed chunk is no longer held', async () => {
    await reopen();
    const c = await claimOf(a);
    await claims.release(t.pool, runId, c);
    expect(await chunkRow(c.chunkNo)).toMatchObject({ claim_token: null, lease_ms: null });
    const next = await claimOf(b);
    expect([next.chunkNo, next.takenFrom, next.attempts]).toEqual([c.chunkNo, undefined, 0]);
    await t.pool.query(`UPDATE scoring.score_chunks SET status = 'done' WHERE run_id = $1 AND chunk_no = $2`, [runId, next.chunkNo]);
    expect(await claims.stillHeld(t.pool, runId, next)).toBe(false);
    expect((await claims.state(t.pool, runId)).pending).toBe(2);
  });

  it('the snapshot and planned rows of the chunks asked for, and nothing of the others', async () => {
    await t.pool.query(`UPDATE scoring.score_runs SET source_snapshot = 'snap-1' WHERE run_id = $1`, [runId]);
    await t.pool.query(`UPDATE scoring.score_chunks SET rows_planned = NULL WHERE run_id = $1 AND chunk_no = 3`, [runId]);
    const got = await claims.snapshotAndRows(t.pool, runId, [1, 3]);
    expect(got.snapshot).toBe('snap-1');
    expect([...got.rows.entries()].sort()).toEqual([
      [1, 500],
      [3, undefined],
    ]);
    expect((await claims.snapshotAndRows(t.pool, '999999', [1])).snapshot).toBeNull();
  });

  it('a worker joins the newest running shared run, never a finished one, a challenger run or one not yet planned', async () => {
    await t.pool.query(`UPDATE scoring.score_runs SET status = 'succeeded' WHERE run_id = $1`, [runId]);
    expect(await claims.joinableRun(t.pool)).toBeUndefined();
    await t.pool.query(`UPDATE scoring.score_runs SET status = 'running', params = params || '{"workers": 2}' WHERE run_id = $1`, [runId]);
    expect(await claims.joinableRun(t.pool)).toBe(runId);
    await t.pool.query(`UPDATE scoring.score_runs SET chunks_total = NULL WHERE run_id = $1`, [runId]);
    expect(await claims.joinableRun(t.pool)).toBeUndefined();
    expect(await claims.state(t.pool, '999999')).toEqual({ runStatus: undefined, pending: 0, failed: undefined });
  });
});
