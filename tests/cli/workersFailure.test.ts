import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { follow, runCli, startCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runInProcess } from '../helpers/run.js';
import { failWorkerChunks } from '../helpers/failChunks.js';
import { holdChunk } from '../helpers/holdChunk.js';

/** The published table: its count, an md5 of the ordered (customer_id, score), and the runs it comes from. */
async function published(t: TestDatabase): Promise<{ n: number; md5: string; runs: string }> {
  const { rows } = await t.pool.query<{ n: number; md5: string; runs: string }>(
    `SELECT count(*)::int AS n, md5(string_agg(customer_id::text || ':' || score::text, ',' ORDER BY customer_id)) AS md5,
            string_agg(DISTINCT run_id::text, ',') AS runs FROM scoring.customer_scores`,
  );
  return rows[0] as { n: number; md5: string; runs: string };
}

async function run(t: TestDatabase, runId: string): Promise<{ status: string; error: string | null }> {
  const { rows } = await t.pool.query<{ status: string; error: string | null }>(`SELECT status, error FROM scoring.score_runs WHERE run_id = $1`, [runId]);
  return rows[0] as { status: string; error: string | null };
}

/** The chunks the process `pid` claims or did, at this moment. */
async function chunksOf(t: TestDatabase, runId: string, pid: number | undefined): Promise<number[]> {
  const { rows } = await t.pool.query<{ chunk_no: number }>(
    `SELECT chunk_no FROM scoring.score_chunks WHERE run_id = $1 AND claim_pid = $2 AND (status = 'done' OR claim_token IS NOT NULL) ORDER BY chunk_no`,
    [runId, pid],
  );
  return rows.map((r) => r.chunk_no);
}

const started = (l: Record<string, unknown>) => typeof l.run_id === 'string' && /started/.test(String(l.msg));
const output = (r: CliResult) => r.stderr + r.stdout.slice(-3000);

/**
 * A chunk that fails for good on any worker fails the shared run for everyone: its failure is caused in the
 * database (a trigger on score_chunks raises inside the chunk's transaction, for one worker's pid), not mocked.
 */
describe('a chunk that fails for good fails a shared run for every worker', () => {
  let t: TestDatabase;
  let before: { n: number; md5: string; runs: string };
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 6000, seed: 5 });
    await runInProcess(t, { chunkSize: 500, workers: 1 });
    before = await published(t);
  }, 60_000);
  afterAll(async () => t.drop());

  it('a permanent failure on a worker: the run fails naming the chunk, worker and attempts; every worker exits 1 and stops claiming; nothing is published; `resume` finishes it once fixed', async () => {
    const failure = await failWorkerChunks(t);
    const hold = await holdChunk(t, 3);
    const coordinator = startCli(['run', '--chunk-size', '50', '--workers', '1'], t.env);
    const logs = follow(coordinator);
    let runId: string;
    let worker: ReturnType<typeof startCli>;
    let coordinatorChunks: number[];
    let rw: CliResult;
    try {
      runId = (await logs.until('run started', started)).run_id as string;
      await hold.reached(30_000);
      worker = startCli(['work', '--run', runId], t.env);
      await failure.add(worker.pid as number, 'P0001');
      rw = await worker.result;
      // The coordinator still waits inside chunk 3's commit: what it holds now is all it may ever do.
      coordinatorChunks = await chunksOf(t, runId, coordinator.pid);
    } finally {
      await hold.release();
    }
    const rc = await coordinator.result;
    expect(rw.code, output(rw)).toBe(1);
    expect(rc.code, output(rc)).toBe(1);
    const failed = await t.pool.query<{ chunk_no: number; attempts: number; claim_pid: number; claim_host: string }>(
      `SELECT chunk_no, attempts, claim_pid, claim_host FROM scoring.score_chunks WHERE run_id = $1 AND failed`,
      [runId],
    );
    expect(failed.rows).toHaveLength(1);
    const f = failed.rows[0]!;
    expect(f).toMatchObject({ claim_pid: worker.pid, claim_host: hostname(), attempts: 1 });
    const r = await run(t, runId);
    expect(r.status).toBe('failed');
    expect(r.error).toMatch(new RegExp(`chunk ${f.chunk_no} failed on pid ${worker.pid} on ${hostname()}: .*test: chunk ${f.chunk_no} refused`));
    const show = await runCli(['runs', 'show', runId], t.env);
    expect(show.stdout).toMatch(
      new RegExp(
        `Chunks not done or retried:\\n  #${f.chunk_no} \\S+ \\S+ failed, 1 attempt\\(s\\) \\(last by pid ${worker.pid} on ${hostname()}\\): .*refused`,
      ),
    );
    // Every worker stopped claiming: the coordinator did nothing beyond what it held when the chunk failed.
    expect((await chunksOf(t, runId, coordinator.pid)).every((c) => coordinatorChunks.includes(c))).toBe(true);
    expect(rc.logs.filter((l) => /took it over/.test(String(l.msg)))).toEqual([]);
    expect(await published(t)).toEqual(before);
    await failure.fix();
    const resumed = await runCli(['resume', runId], t.env);
    expect(resumed.code, output(resumed)).toBe(0);
    const after = await published(t);
    expect({ n: after.n, md5: after.md5, runs: after.runs }).toEqual({ n: before.n, md5: before.md5, runs: runId });
  }, 60_000);

  it('a transient failure counts its attempts across workers: a chunk whose worker died after failing is given up by the one that takes it over, at --chunk-attempts', async () => {
    const failure = await failWorkerChunks(t);
    const hold = await holdChunk(t, 3);
    const coordinator = startCli(['run', '--chunk-size', '50', '--workers', '1', '--chunk-lease', '1', '--chunk-attempts', '2'], t.env);
    const logs = follow(coordinator);
    let runId: string;
    let chunkNo: number;
    let rb: CliResult;
    try {
      runId = (await logs.until('run started', started)).run_id as string;
      await hold.reached(30_000);
      const a = startCli(['work', '--run', runId], t.env);
      // Worker a fails its chunk once (serialization_failure: transient), and is killed inside its second attempt.
      await failure.add(a.pid as number, '40001', 1);
      await failure.reached();
      a.kill('SIGKILL');
      await a.result;
      await failure.unhold();
      const b = startCli(['work', '--run', runId], t.env);
      rb = await b.result;
      const failed = await t.pool.query<{ chunk_no: number; attempts: number; last_error: string; claim_pid: number }>(
        `SELECT chunk_no, attempts, last_error, claim_pid FROM scoring.score_chunks WHERE run_id = $1 AND failed`,
        [runId],
      );
      expect(failed.rows).toHaveLength(1);
      chunkNo = failed.rows[0]!.chunk_no;
      // One failed attempt on a, one lost with a's lease: b did not try a third time.
      expect(failed.rows[0]).toMatchObject({ attempts: 2, claim_pid: b.pid });
      expect(failed.rows[0]!.last_error).toMatch(
        new RegExp(`^2 attempts across workers \\(--chunk-attempts 2\\); the last: the lease of pid ${a.pid} on .* expired`),
      );
      expect(rb.code, output(rb)).toBe(1);
      expect(rb.logs.some((l) => l.chunk === chunkNo && /has had 2 attempts across workers/.test(String(l.msg)))).toBe(true);
    } finally {
      await hold.release();
    }
    const rc = await coordinator.result;
    expect(rc.code, output(rc)).toBe(1);
    expect((await run(t, runId)).error).toMatch(new RegExp(`chunk ${chunkNo} failed on pid \\d+ on .*: 2 attempts across workers`));
    expect((await published(t)).md5).toBe(before.md5);
    await failure.fix();
    const resumed = await runCli(['resume', runId], t.env);
    expect(resumed.code, output(resumed)).toBe(0);
    expect((await published(t)).md5).toBe(before.md5);
  }, 60_000);
});
