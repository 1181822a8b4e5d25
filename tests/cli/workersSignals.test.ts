import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { follow, runCli, startCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runInProcess } from '../helpers/run.js';
import { holdChunk, holdWorkerChunks } from '../helpers/holdChunk.js';

/** The published table as the issue compares it: the count and an md5 of the ordered (customer_id, score). */
async function published(t: TestDatabase): Promise<{ n: number; distinct: number; md5: string }> {
  const { rows } = await t.pool.query<{ n: number; distinct: number; md5: string }>(
    `SELECT count(*)::int AS n, count(DISTINCT customer_id)::int AS distinct,
            md5(string_agg(customer_id::text || ':' || score::text, ',' ORDER BY customer_id)) AS md5 FROM scoring.customer_scores`,
  );
  return rows[0] as { n: number; distinct: number; md5: string };
}

/** The claims on the run's pending chunks: chunk -> (pid, token). */
async function pendingClaims(t: TestDatabase, runId: string): Promise<Map<number, { pid: number | null; token: string | null }>> {
  const { rows } = await t.pool.query<{ chunk_no: number; pid: number | null; token: string | null }>(
    `SELECT chunk_no, claim_pid AS pid, claim_token::text AS token FROM scoring.score_chunks WHERE run_id = $1 AND status = 'pending' ORDER BY chunk_no`,
    [runId],
  );
  return new Map(rows.map((r) => [r.chunk_no, { pid: r.pid, token: r.token }]));
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const started = (l: Record<string, unknown>) => typeof l.run_id === 'string' && /started/.test(String(l.msg));
const exitOk = (r: CliResult) => expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(0);

/**
 * SIGTERM to the processes of a shared run, as Kubernetes sends it before SIGKILL: a worker finishes the
 * chunks in flight, claims nothing more, gives back only its own claims and exits 143; the coordinator of
 * `run --workers N` stops its local workers the same way and leaves the run interrupted and resumable.
 */
describe('SIGTERM to the workers of a shared run', () => {
  let t: TestDatabase;
  let oneWorker: { n: number; distinct: number; md5: string };
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 6000, seed: 5 });
    await runInProcess(t, { chunkSize: 500, workers: 1 });
    oneWorker = await published(t);
    expect(oneWorker.n).toBeGreaterThan(5000);
  }, 60_000);
  afterAll(async () => t.drop());

  it('a `scorejob work` process SIGTERMed mid-chunk commits the chunks in flight, claims no more, releases only its own claims, exits 143; the others finish the run', async () => {
    // The coordinator waits inside chunk 3's commit, so the claims stand still while the worker is stopped.
    const holdWorker = await holdWorkerChunks(t, 1);
    const holdCoordinator = await holdChunk(t, 3);
    const coordinator = startCli(['run', '--chunk-size', '50', '--workers', '1'], t.env);
    let worker: ReturnType<typeof startCli> | undefined;
    try {
      const runId = (await follow(coordinator).until('run started', started)).run_id as string;
      await holdCoordinator.reached(30_000);
      worker = startCli(['work', '--run', runId], t.env);
      const workerLogs = follow(worker);
      await holdWorker.add(worker.pid as number);
      let before: Map<number, { pid: number | null; token: string | null }>;
      let sigtermAt: string;
      try {
        // The worker's first chunk waits inside its commit: SIGTERM it there.
        await workerLogs.until('joined', (l) => /joined run/.test(String(l.msg)));
        await holdWorker.reached(30_000);
        before = await pendingClaims(t, runId);
        sigtermAt = (await t.pool.query<{ now: string }>(`SELECT clock_timestamp()::text AS now`)).rows[0]!.now;
        worker.kill('SIGTERM');
        await workerLogs.until('on SIGTERM', (l) => l.signal === 'SIGTERM' && /finishing the chunk in flight/.test(String(l.msg)));
      } finally {
        await holdWorker.release();
      }
      const rw = await worker.result;
      expect(rw.code, rw.stderr + rw.stdout.slice(-2000)).toBe(143);
      const end = rw.logs.find((l) => l.outcome === 'stopped');
      expect(end?.msg).toMatch(/worker done with run \d+: [1-9]\d* chunk\(s\).*stopped by SIGTERM \(exit 143/);
      expect(end?.exit_code).toBe(143);
      // The chunks in flight committed: every chunk it logged done is done by it in the ledger.
      const doneLogged = rw.logs
        .filter((l) => /^chunk \d+ done$/.test(String(l.msg)))
        .map((l) => l.chunk as number)
        .sort((a, b) => a - b);
      const doneByIt = await t.pool.query<{ chunk_no: number }>(
        `SELECT chunk_no FROM scoring.score_chunks WHERE run_id = $1 AND status = 'done' AND claim_pid = $2 ORDER BY chunk_no`,
        [runId, worker.pid],
      );
      expect(doneLogged.length).toBeGreaterThanOrEqual(1);
      expect(doneByIt.rows.map((r) => r.chunk_no)).toEqual(doneLogged);
      // It claimed nothing after the signal, and holds nothing now (the coordinator still waits at its hold).
      const after = await pendingClaims(t, runId);
      const late = await t.pool.query(`SELECT chunk_no FROM scoring.score_chunks WHERE run_id = $1 AND claim_pid = $2 AND claimed_at > $3::timestamptz`, [
        runId,
        worker.pid,
        sigtermAt,
      ]);
      expect(late.rows).toEqual([]);
      expect([...after.values()].filter((c) => c.pid === worker?.pid && c.token !== null)).toEqual([]);
      // It gave back nothing it did not hold: the coordinator's claims are as they were.
      const coordinatorClaims = (m: typeof before) => [...m.entries()].filter(([, c]) => c.pid === coordinator.pid && c.token !== null);
      expect(coordinatorClaims(before).length).toBeGreaterThanOrEqual(1);
      expect(coordinatorClaims(after)).toEqual(coordinatorClaims(before));
    } finally {
      await holdWorker.release();
      await holdCoordinator.release();
    }
    const rc = await coordinator.result;
    exitOk(rc);
    expect(rc.logs.filter((l) => l.claim_lost === true)).toEqual([]);
    expect(await published(t)).toEqual(oneWorker);
  }, 60_000);

  it('`run --workers 2` SIGTERMed: its local worker stops after its chunks in flight, the run is interrupted (exit 143), a remote worker whose commit came too late exits 0, and `resume` finishes it', async () => {
    // Each process waits inside a commit of its own, released apart: the coordinator at chunk 3, its local worker at its first.
    const holdLocal = await holdWorkerChunks(t, 1);
    const holdRemote = await holdWorkerChunks(t, 2);
    const hold = await holdChunk(t, 3);
    const coordinator = startCli(['run', '--chunk-size', '50', '--workers', '2'], t.env);
    const logs = follow(coordinator);
    let runId: string;
    let workerPid: number;
    let remote: ReturnType<typeof startCli>;
    let rc: CliResult;
    try {
      runId = (await logs.until('run started', started)).run_id as string;
      workerPid = ((await logs.until('workers started', (l) => Array.isArray(l.worker_pids))).worker_pids as number[])[0] as number;
      await holdLocal.add(workerPid);
      await hold.reached(30_000);
      await holdLocal.reached(30_000);
      // A worker on another machine, held inside its first chunk's commit until the run is over.
      remote = startCli(['work', '--run', runId], t.env);
      await holdRemote.add(remote.pid as number);
      await holdRemote.reached(30_000);
      coordinator.kill('SIGTERM');
      await logs.until('on SIGTERM', (l) => l.signal === 'SIGTERM' && /finishing the chunk in flight/.test(String(l.msg)));
      await hold.release();
      await holdLocal.release();
      rc = await coordinator.result;
    } finally {
      await hold.release();
      await holdLocal.release();
      await holdRemote.release();
    }
    expect(rc.code, rc.stderr + rc.stdout.slice(-3000)).toBe(143);
    expect(alive(workerPid)).toBe(false);
    // The local worker got the signal, stopped cleanly, and the coordinator says how it ended.
    expect(rc.logs.some((l) => l.worker_pid === workerPid && l.outcome === 'stopped' && l.exit_code === 143 && (l.chunks as number) >= 1)).toBe(true);
    expect(rc.logs.some((l) => l.exited_pid === workerPid && l.exit_code === 143)).toBe(true);
    // The remote worker's commit found the run interrupted: rolled back, and it ends as a worker whose run is over.
    const rr = await remote.result;
    expect(rr.code, rr.stderr + rr.stdout.slice(-2000)).toBe(0);
    expect(rr.logs.some((l) => l.outcome === 'run-ended')).toBe(true);
    const { rows } = await t.pool.query<{ status: string; pending: number; claimed: number; failed: number }>(
      `SELECT r.status, count(*) FILTER (WHERE c.status = 'pending')::int AS pending, count(*) FILTER (WHERE c.status = 'pending' AND c.claim_token IS NOT NULL)::int AS claimed,
              count(*) FILTER (WHERE c.failed)::int AS failed
         FROM scoring.score_runs r JOIN scoring.score_chunks c USING (run_id) WHERE r.run_id = $1 GROUP BY r.status`,
      [runId],
    );
    expect(rows[0]).toMatchObject({ status: 'interrupted', claimed: 0, failed: 0 });
    expect(rows[0]?.pending).toBeGreaterThan(0);
    const resumed = await runCli(['resume', runId], t.env);
    exitOk(resumed);
    expect(await published(t)).toEqual(oneWorker);
  }, 60_000);
});
