import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { startCli, waitForLog, type CliResult } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitUntil } from '../helpers/hold.js';
import { holdChunk } from '../helpers/holdChunk.js';
import { modelCopy } from '../helpers/run.js';

/** The published table as the issue compares it: the count and an md5 of the ordered (customer_id, score). */
async function published(t: TestDatabase): Promise<{ n: number; md5: string }> {
  const { rows } = await t.pool.query<{ n: number; md5: string }>(
    `SELECT count(*)::int AS n, md5(string_agg(customer_id::text || ':' || score::text, ',' ORDER BY customer_id)) AS md5 FROM scoring.customer_scores`,
  );
  return rows[0] as { n: number; md5: string };
}

async function distinctPublished(t: TestDatabase): Promise<number> {
  const { rows } = await t.pool.query<{ n: number }>(`SELECT count(DISTINCT customer_id)::int AS n FROM scoring.customer_scores`);
  return rows[0]?.n ?? -1;
}

/** Waits until worker `pid` holds a claim on a pending chunk; with `pause`, stops it (SIGSTOP) while it does. */
async function whileHoldingClaim(t: TestDatabase, runId: string, child: ChildProcess, act: () => void): Promise<void> {
  const holds = async () =>
    (
      await t.pool.query(`SELECT 1 FROM scoring.score_chunks WHERE run_id = $1 AND claim_pid = $2 AND status = 'pending' AND lease_until > now()`, [
        runId,
        child.pid,
      ])
    ).rows.length > 0;
  for (let i = 0; i < 200; i++) {
    await waitUntil('the worker to hold a claim', async () => ((await holds()) ? true : undefined), 20_000, 2);
    child.kill('SIGSTOP');
    if (await holds()) {
      act();
      return;
    }
    child.kill('SIGCONT'); // it finished that chunk in between: try again
  }
  throw new Error('never caught the worker holding a claim');
}

const started = (l: Record<string, unknown>) => typeof l.run_id === 'string' && /started/.test(String(l.msg));
const exitOk = (r: CliResult) => expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(0);

describe('several workers share one run', () => {
  let t: TestDatabase;
  let oneWorker: { n: number; md5: string };
  let oneWorkerRun: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 6000, seed: 5 });
    const first = await runCliInProcess(['run', '--chunk-size', '500', '--workers', '1'], t.env);
    exitOk(first);
    oneWorkerRun = first.logs.find(started)?.run_id as string;
    oneWorker = await published(t);
    expect(oneWorker.n).toBeGreaterThan(5000);
  }, 60_000);
  afterAll(async () => t.drop());

  it('--workers 2 on one host publishes the same table as --workers 1, and the chunks were scored by two processes', async () => {
    // The coordinator is held inside chunk 3's commit until its local worker has joined: both then score.
    const hold = await holdChunk(t, 3);
    const child = startCli(['run', '--chunk-size', '50', '--workers', '2'], t.env);
    try {
      await waitForLog(child, (l) => /joined run/.test(String(l.msg)));
    } finally {
      await hold.release();
    }
    const r = await child.result;
    exitOk(r);
    expect(await published(t)).toEqual(oneWorker);
    const runId = r.logs.find(started)?.run_id as string;
    const { rows } = await t.pool.query<{ pids: number; rows: number }>(
      `SELECT count(DISTINCT claim_pid)::int AS pids, sum(rows_scored + rows_rejected)::int AS rows FROM scoring.score_chunks WHERE run_id = $1`,
      [runId],
    );
    expect(rows[0]?.pids).toBe(2);
    const run = await t.pool.query(`SELECT rows_scored::int + rows_rejected::int AS total FROM scoring.score_runs WHERE run_id = $1`, [runId]);
    expect(run.rows[0]?.total).toBe(rows[0]?.rows);
    // The run's totals and statistics are the one-worker run's; its stage timings add up every worker's chunks.
    const both = await t.pool.query<{ run_id: string; scored: string; rejected: string; n: string; mean: number; predict: number }>(
      `SELECT run_id::text, rows_scored AS scored, rows_rejected AS rejected, stats->'scores'->>'count' AS n, (stats->'scores'->>'mean')::float8 AS mean,
              (stats->'timings_ms'->>'predict')::float8 AS predict FROM scoring.score_runs WHERE run_id IN ($1, $2) ORDER BY run_id`,
      [oneWorkerRun, runId],
    );
    const [one, two] = both.rows;
    expect([two?.scored, two?.rejected, two?.n]).toEqual([one?.scored, one?.rejected, one?.n]);
    expect(two?.mean).toBeCloseTo(one?.mean as number, 9);
    expect(two?.predict).toBeGreaterThan(0);
    const show = await runCliInProcess(['runs', 'show', runId], t.env);
    expect(show.stdout).toMatch(/Workers \(2\):\n {2}pid \d+ on .+: \d+ chunk\(s\), [\d,]+ rows, [\d.]+ s in its chunks\n {2}pid \d+ on /);
  }, 60_000);

  it('`work` processes on other "machines" join a coordinator; a worker killed -9 mid-chunk has its chunk taken over after the lease; nothing lost or doubled', async () => {
    // The coordinator waits inside chunk 3's commit while `a` joins and is killed holding a claim; then `b` joins.
    const hold = await holdChunk(t, 3);
    const coordinator = startCli(['run', '--chunk-size', '20', '--workers', '1', '--chunk-lease', '2'], t.env);
    const runId = (await waitForLog(coordinator, started)).run_id as string;
    const a = startCli(['work', '--wait', '30'], t.env);
    try {
      await waitForLog(a, (l) => /joined run/.test(String(l.msg)));
      await whileHoldingClaim(t, runId, a, () => a.kill('SIGKILL'));
      await a.result;
    } finally {
      await hold.release();
    }
    const b = startCli(['work', '--run', runId], t.env);
    const [rc, rb] = await Promise.all([coordinator.result, b.result]);
    exitOk(rc);
    exitOk(rb);
    expect(rb.logs.some((l) => /chunk \d+ done/.test(String(l.msg)))).toBe(true);
    expect(await published(t)).toEqual(oneWorker);
    // The killed worker's chunk: taken over, its lost attempt counted.
    const taken = [...rc.logs, ...rb.logs].filter((l) => /took it over from pid/.test(String(l.msg)));
    expect(taken.length).toBeGreaterThanOrEqual(1);
    const { rows } = await t.pool.query<{ attempts: number }>(`SELECT attempts FROM scoring.score_chunks WHERE run_id = $1 AND chunk_no = $2`, [
      runId,
      taken[0]?.chunk,
    ]);
    expect(rows[0]?.attempts).toBe(2);
    expect(taken[0]?.from_pid).toBe(a.pid);
    // No worker lost a claim it was not paused or killed for.
    expect([...rc.logs, ...rb.logs].filter((l) => l.claim_lost === true)).toEqual([]);
  }, 90_000);

  it('fencing: a worker paused (SIGSTOP) past its lease cannot commit the chunk another worker finished; it logs that it lost the claim', async () => {
    const hold = await holdChunk(t, 3);
    const coordinator = startCli(['run', '--chunk-size', '20', '--workers', '1', '--chunk-lease', '1'], t.env);
    const runId = (await waitForLog(coordinator, started)).run_id as string;
    const stale = startCli(['work', '--run', runId], t.env);
    try {
      await waitForLog(stale, (l) => /joined run/.test(String(l.msg)));
      await whileHoldingClaim(t, runId, stale, () => undefined);
    } finally {
      await hold.release();
    }
    const rc = await coordinator.result;
    exitOk(rc);
    stale.kill('SIGCONT');
    const rs = await stale.result;
    expect(await published(t)).toEqual(oneWorker);
    expect(await distinctPublished(t)).toBe(oneWorker.n);
    expect(rs.logs.some((l) => l.claim_lost === true && /lost the claim on chunk/.test(String(l.msg)))).toBe(true);
    expect([0]).toContain(rs.code);
  }, 90_000);

  it('kill -9 of the coordinator while workers run: the workers stop cleanly, and `resume` gives the table of a clean run', async () => {
    // The coordinator waits inside chunk 3's commit while the worker scores, and is killed there.
    const hold = await holdChunk(t, 3);
    const coordinator = startCli(['run', '--chunk-size', '40', '--workers', '1', '--chunk-lease', '2'], t.env);
    const runId = (await waitForLog(coordinator, started)).run_id as string;
    const w = startCli(['work', '--run', runId], t.env);
    try {
      await waitForLog(w, (l) => /chunk \d+ done/.test(String(l.msg)));
      coordinator.kill('SIGKILL');
      await coordinator.result;
    } finally {
      await hold.release();
    }
    const rw = await w.result;
    exitOk(rw);
    expect(rw.logs.some((l) => l.outcome === 'coordinator-gone')).toBe(true);
    await waitUntil(
      'the run to be resumable',
      async () => {
        const r = await runCliInProcess(['resume', runId], t.env);
        return r.code === 0 ? r : undefined;
      },
      30_000,
      250,
    );
    expect(await published(t)).toEqual(oneWorker);
  }, 90_000);

  it("a worker refuses model files that are not the run's (exit 2), and exits 0 when no run is running", async () => {
    // The coordinator is held inside chunk 3's commit: the run is still running when the worker checks it.
    const hold = await holdChunk(t, 3);
    let runId: string;
    try {
      const coordinator = startCli(['run', '--chunk-size', '200', '--workers', '1'], t.env);
      runId = (await waitForLog(coordinator, started)).run_id as string;
      await hold.reached();
      const other = await modelCopy((m) => (m.version = '9.9.9'));
      const refused = await runCliInProcess(['work', '--run', runId, '--model', other], t.env);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(new RegExp(`scorejob: the model files in .* are not run ${runId}'s \\(sha256`));
      await hold.release();
      exitOk(await coordinator.result);
    } finally {
      await hold.release();
    }
    const idle = await runCliInProcess(['work', '--wait', '0'], t.env);
    expect(idle.code).toBe(0);
    expect(idle.stderr + idle.stdout).toMatch(/no shared run is running/);
  }, 30_000);
});
