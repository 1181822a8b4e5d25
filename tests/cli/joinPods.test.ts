import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { startCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { waitUntil } from '../helpers/waitUntil.js';
import { modelCopy } from '../helpers/run.js';

/**
 * One command for every pod (deploy/kubernetes/cronjob.yaml, `parallelism: N`): N real processes of
 * exactly that command, started at the same moment against real PostgreSQL. One coordinates the tick's
 * run, the others join it as workers; all exit 0 once it is published; one started afterwards exits 0
 * at once. A worker killed -9 leaves its chunk to the others (after its lease); a coordinator killed -9
 * leaves the run to be resumed by a remaining process (the next tick would otherwise).
 * The source is a view that sleeps on every 5th key, so that the run lasts long enough to be joined.
 */

const customers = 4000;

describe('scorejob run --if-due EXPR --join, in every pod', () => {
  let t: TestDatabase;
  let model: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers, seed: 21 });
    await t.pool.query(`CREATE TABLE knob (delay float8 NOT NULL); INSERT INTO knob VALUES (0.01)`);
    await t.pool.query(
      `CREATE VIEW slow_customers AS SELECT c.* FROM customers c CROSS JOIN knob k WHERE pg_sleep(CASE WHEN c.customer_id % 5 = 0 THEN k.delay ELSE 0 END) IS NOT NULL`,
    );
    model = await modelCopy((m) => void (m.source = { table: 'slow_customers', key: 'customer_id' }));
  }, 60_000);
  afterAll(async () => t.drop());

  /** The exact command of the CronJob's pods, for a tick of its own (each test is a period: `--tick-at`, as `schedule` passes it). */
  const podCommand = (tickAt: string) => [
    '--no-pretty',
    'run',
    '--trigger',
    'cron',
    '--model',
    model,
    '--chunk-size',
    '100',
    '--chunk-lease',
    '3',
    '--if-due',
    '*/1 * * * * *',
    '--timezone',
    'UTC',
    '--tick-at',
    tickAt,
    '--join',
    '--wait',
    '120',
  ];
  /** A tick (one per second) no test has used yet: the second now begun (a run is due for any tick that has none), else the next one. */
  let lastTick = 0;
  const newTick = async () => {
    let tick = Math.floor(Date.now() / 1000) * 1000;
    if (tick <= lastTick) {
      tick = lastTick + 1000;
      await new Promise((r) => setTimeout(r, tick - Date.now() + 50));
    }
    lastTick = tick;
    return new Date(tick).toISOString();
  };
  const pods = (n: number, tickAt: string) => Array.from({ length: n }, () => startCli(podCommand(tickAt), t.env));
  const runsFor = async (tickAt: string) =>
    (
      await t.pool.query<{ run_id: string; status: string; pid: number; resumes: number }>(
        `SELECT run_id::text, status, pid, resumes FROM scoring.score_runs WHERE tick_at = $1 ORDER BY run_id`,
        [tickAt],
      )
    ).rows;
  const published = async () => Number((await t.pool.query(`SELECT count(*) FROM scoring.customer_scores`)).rows[0]?.count);
  const claimers = async (runId: string) =>
    (
      await t.pool.query<{ pid: number }>(`SELECT DISTINCT claim_pid AS pid FROM scoring.score_chunks WHERE run_id = $1 AND claim_pid IS NOT NULL`, [runId])
    ).rows.map((r) => r.pid);
  const why = (rs: CliResult[]) => rs.map((r) => `exit ${r.code}: ${r.stderr}${r.stdout.slice(-1500)}`).join('\n---\n');
  const pidWorking = async (runId: string, children: ChildProcess[], coordinator: boolean) =>
    waitUntil(
      `a ${coordinator ? 'coordinator' : 'worker'} process holding a claim`,
      async () => {
        const run = (await t.pool.query<{ pid: number }>(`SELECT pid FROM scoring.score_runs WHERE run_id = $1`, [runId])).rows[0];
        const busy = (
          await t.pool.query<{ pid: number }>(
            `SELECT DISTINCT claim_pid AS pid FROM scoring.score_chunks WHERE run_id = $1 AND status = 'pending' AND lease_until > now()`,
            [runId],
          )
        ).rows.map((r) => r.pid);
        return children.find((c) => busy.includes(c.pid as number) && (c.pid === run?.pid) === coordinator);
      },
      60_000,
      20,
    );

  it('4 processes at the same moment: one run, scored by several of them, published; all exit 0; a late one exits 0 at once', async () => {
    const tickAt = await newTick();
    const children = pods(4, tickAt);
    const results = await Promise.all(children.map((c) => c.result));
    expect(
      results.map((r) => r.code),
      why(results),
    ).toEqual([0, 0, 0, 0]);
    const runs = await runsFor(tickAt);
    expect(runs).toMatchObject([{ status: 'succeeded' }]);
    expect(await published()).toBe(customers);
    const byPid = await claimers(runs[0]!.run_id);
    expect(byPid.length, `chunks claimed by ${byPid.join(',')}`).toBeGreaterThan(1);
    // One coordinator: the others said they joined.
    expect(results.filter((r) => r.logs.some((l) => /^run \d+ started/.test(String(l.msg))))).toHaveLength(1);
    expect(results.filter((r) => r.logs.some((l) => /joining it as a worker \(--join\)$/.test(String(l.msg)))).length).toBeGreaterThanOrEqual(1);
    expect(results.every((r) => r.stderr === '')).toBe(true);

    const late = await runCliInProcess(podCommand(tickAt), t.env); // the due check is the subject here, not the process
    expect(late.code).toBe(0);
    expect(late.logs.find((l) => l.reason === 'done')?.msg).toMatch(/^not due: tick \S+ already has succeeded run/);
    expect(await runsFor(tickAt)).toHaveLength(1);
  }, 180_000);

  it('a worker killed -9: its chunk is taken over, the run is published, the others exit 0', async () => {
    const tickAt = await newTick();
    const children = pods(3, tickAt);
    const runId = await waitUntil<string>('the run', async () => (await runsFor(tickAt))[0]?.run_id, 60_000, 20);
    const victim = await pidWorking(runId, children, false);
    victim.kill('SIGKILL');
    const results = await Promise.all(children.map((c) => c.result));
    const others = results.filter((_, i) => children[i] !== victim);
    expect(
      others.map((r) => r.code),
      why(others),
    ).toEqual([0, 0]);
    expect(await runsFor(tickAt)).toMatchObject([{ run_id: runId, status: 'succeeded', resumes: 0 }]);
    expect(await published()).toBe(customers);
  }, 180_000);

  it('the coordinator killed -9: a remaining process resumes the run, the others join it, all exit 0', async () => {
    const tickAt = await newTick();
    const children = pods(3, tickAt);
    const runId = await waitUntil<string>('the run', async () => (await runsFor(tickAt))[0]?.run_id, 60_000, 20);
    const coordinator = await pidWorking(runId, children, true);
    coordinator.kill('SIGKILL');
    const results = await Promise.all(children.map((c) => c.result));
    const others = results.filter((_, i) => children[i] !== coordinator);
    expect(
      others.map((r) => r.code),
      why(others),
    ).toEqual([0, 0]);
    expect(await runsFor(tickAt)).toMatchObject([{ run_id: runId, status: 'succeeded', resumes: 1 }]);
    expect(others.some((r) => r.logs.some((l) => String(l.msg) === `run ${runId} lost its coordinator; planning the tick again (its run is resumed)`))).toBe(
      true,
    );
    expect(await published()).toBe(customers);
  }, 180_000);
});

describe('--join needs --if-due', () => {
  it('refuses --join without --if-due (exit 2, naming both flags), before connecting', async () => {
    const r = await runCliInProcess(['run', '--join'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^scorejob: --join only applies with --if-due EXPR/);
  });
});
