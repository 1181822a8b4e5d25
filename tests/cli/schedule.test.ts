import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { previousTick } from '../../src/cronTicks.js';
import { migrate } from '../../src/db/migrate.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { startCli, waitForLog, type CliResult } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { adminUrl, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdRunLock } from '../helpers/hold.js';
import { holdChunk } from '../helpers/holdChunk.js';
import { modelCopy } from '../helpers/run.js';

/**
 * `scorejob schedule` as operators run it: the built CLI as a child process, its runs as its own
 * children, against real PostgreSQL. Runs read `slow_customers`, a view over the seeded customers
 * with two knobs: `delay` (pg_sleep on every 5th key, so a run outlasts a tick) and `fail` (nulls a
 * column the model cannot fill, so the reject gate fails the run after it is in the ledger).
 */

interface LedgerRun {
  run_id: string;
  status: string;
  trigger: string;
  started_at: Date;
  finished_at: Date | null;
  tick_at: Date | null;
  error: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

describe('scorejob schedule', () => {
  let t: TestDatabase;
  let slowModel: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 2000, seed: 5 });
    const { rows } = await t.pool.query<{ list: string }>(
      `SELECT string_agg(CASE WHEN column_name = 'tenure_months' THEN 'CASE WHEN k.fail THEN NULL ELSE c.tenure_months END AS tenure_months'
                              ELSE 'c.' || quote_ident(column_name) END, ', ' ORDER BY ordinal_position) AS list
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'customers'`,
    );
    await t.pool.query(`CREATE TABLE knob (delay float8 NOT NULL, fail boolean NOT NULL); INSERT INTO knob VALUES (0, false)`);
    // The sleep must depend on the customer row, or the planner evaluates it once, on the knob's row.
    await t.pool.query(
      `CREATE VIEW slow_customers AS SELECT ${rows[0]?.list} FROM customers c CROSS JOIN knob k
        WHERE pg_sleep(CASE WHEN c.customer_id % 5 = 0 THEN k.delay ELSE 0 END) IS NOT NULL`,
    );
    slowModel = await modelCopy((m) => void (m.source = { table: 'slow_customers', key: 'customer_id' }));
  });
  afterAll(async () => t.drop());

  const knob = (delay: number, fail = false) => t.pool.query('UPDATE knob SET delay = $1, fail = $2', [delay, fail]);
  const ledger = async (schema = 'scoring'): Promise<LedgerRun[]> =>
    (await t.pool.query<LedgerRun>(`SELECT run_id::text, status, trigger, started_at, finished_at, tick_at, error FROM ${schema}.score_runs ORDER BY run_id`))
      .rows;
  const schedule = (args: string[], schema = 'scoring') =>
    startCli(['--no-pretty', '--log-level', 'info', '--schema', schema, 'schedule', '--model', slowModel, '--chunk-size', '500', ...args], t.env);
  const msgs = (r: CliResult) => r.logs.map((l) => String(l.msg));

  it('runs the job on its ticks; a run slower than the interval skips ticks, runs never overlap', async () => {
    await knob(0.001); // a run takes ~2.5 s: longer than the 2 s between ticks
    const before = (await ledger()).length;
    const child = schedule(['--cron', '*/2 * * * * *']);
    const started = await waitForLog(child, (l) => String(l.msg).startsWith('scheduler started'));
    expect(started.next_tick).toMatch(/:\d[02468]\.000Z$/);
    let reported = 0; // the scheduler's own line on each finished run
    await waitForLog(child, (l) => /^run \d+ for tick \S+ succeeded$/.test(String(l.msg)) && ++reported === 3, 60_000);
    child.kill('SIGTERM');
    const r = await child.result;
    expect(r.code).toBe(0);

    const runs = (await ledger()).slice(before).filter((x) => x.status !== 'interrupted');
    expect(runs.length).toBeGreaterThanOrEqual(3);
    for (const run of runs) {
      expect(run).toMatchObject({ trigger: 'schedule', status: 'succeeded' });
      // Each run is for an even-second tick it started at or after.
      expect(run.tick_at?.getUTCSeconds() ?? 1).toSatisfy((s: number) => s % 2 === 0);
      expect(run.tick_at?.getUTCMilliseconds()).toBe(0);
      expect(run.started_at.getTime()).toBeGreaterThanOrEqual((run.tick_at as Date).getTime() - 1000);
    }
    expect(new Set(runs.map((x) => x.tick_at?.toISOString())).size).toBe(runs.length);
    // Never two at once: each run finished before the next one started.
    const all = (await ledger()).slice(before).sort((a, b) => a.started_at.getTime() - b.started_at.getTime());
    for (let i = 1; i < all.length; i++) {
      expect((all[i - 1] as LedgerRun).finished_at!.getTime(), `run ${all[i]?.run_id} started before run ${all[i - 1]?.run_id} finished`).toBeLessThanOrEqual(
        (all[i] as LedgerRun).started_at.getTime(),
      );
    }
    // The slow runs made the scheduler skip ticks, and it said so.
    expect(msgs(r).filter((m) => /^tick \S+ skipped: the run for tick \S+ is still in flight/.test(m)).length).toBeGreaterThan(0);
    expect(msgs(r).filter((m) => m.startsWith('next tick at ')).length).toBeGreaterThanOrEqual(3);
    expect(msgs(r)).toContain('scheduler stopped');
  });

  it('a failing run is in the ledger and the log, and later ticks still run', async () => {
    await knob(0, true); // every row rejected: the gate fails the run
    const before = (await ledger()).length;
    const child = schedule(['--cron', '*/2 * * * * *']);
    const failed = await waitFor('a failed scheduled run', async () => (await ledger()).slice(before).find((x) => x.status === 'failed'));
    expect(failed).toMatchObject({ trigger: 'schedule' });
    expect(failed.error).toMatch(/rejected 100\.00% of rows/);
    await knob(0, false);
    const ok = await waitFor('a succeeded run after the failure', async () =>
      (await ledger()).slice(before).find((x) => x.status === 'succeeded' && Number(x.run_id) > Number(failed.run_id)),
    );
    expect(ok.trigger).toBe('schedule');
    child.kill('SIGTERM');
    const r = await child.result;
    expect(r.code).toBe(0);
    const failureLine = r.logs.find((l) => l.run_id === failed.run_id && l.exit_code === 1 && l.level === 50 && l.tick_at !== undefined);
    expect(failureLine?.msg).toMatch(
      new RegExp(`^run ${failed.run_id} for tick \\S+ failed \\(exit 1\\): rejected 100\\.00% .*scorejob resume ${failed.run_id}`),
    );
  });

  it('SIGTERM: no more ticks, the run in flight stops cleanly (interrupted, exit 143), the scheduler exits 0', async () => {
    await knob(0);
    const before = (await ledger()).length;
    // The run is held inside its second chunk (a trigger waits on a lock the test holds) until it has the SIGTERM.
    const hold = await holdChunk(t, 2);
    let r: CliResult;
    let started: Record<string, unknown>;
    try {
      const child = schedule(['--cron', '*/2 * * * * *']);
      started = await waitForLog(child, (l) => typeof l.run_id === 'string' && /^run \d+ planned/.test(String(l.msg)));
      await hold.reached();
      const asked = waitForLog(child, (l) => /^SIGTERM: finishing the chunk in flight/.test(String(l.msg))); // the run's line, not the scheduler's
      child.kill('SIGTERM');
      await asked; // the run itself logged that it stops after this chunk
      await hold.release();
      r = await child.result;
    } finally {
      await hold.release();
    }
    expect(r.code).toBe(0);
    expect(r.signal).toBeNull();
    const runs = (await ledger()).slice(before);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ run_id: started.run_id, status: 'interrupted', trigger: 'schedule' });
    expect(msgs(r).some((m) => /^SIGTERM: no more ticks; asking the run in flight \(pid \d+\) to stop after its chunk/.test(m))).toBe(true);
    expect(r.logs.find((l) => l.exit_code === 143 && l.run_id === started.run_id)?.msg).toMatch(
      /was interrupted \(exit 143\); resume it with `scorejob resume/,
    );
    expect(msgs(r).at(-1)).toBe('scheduler stopped');
    await knob(0);
  });

  it('a tick that finds the lock taken (a manual run, another scheduler) is skipped with exit 75, and the next tick runs', async () => {
    await knob(0);
    const lockHolder = await holdRunLock(t);
    const before = (await ledger()).length;
    const child = schedule(['--cron', '*/2 * * * * *']);
    try {
      await waitForLog(child, (l) => l.exit_code === 75 && /^tick \S+ skipped: another run holds the lock/.test(String(l.msg)), 20_000);
    } finally {
      await lockHolder.release();
    }
    await waitFor('a run once the lock is free', async () => (await ledger()).slice(before).find((x) => x.status === 'succeeded'));
    child.kill('SIGTERM');
    expect((await child.result).code).toBe(0);
  });

  it('keeps ticking while the database is away, and runs again when it is back', async () => {
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    try {
      await knob(0);
      const child = schedule(['--cron', '*/2 * * * * *']);
      await waitForLog(child, (l) => String(l.msg).startsWith('scheduler started'));
      await admin.query(`ALTER DATABASE ${admin.escapeIdentifier(t.name)} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [t.name]);
      const failed = await waitForLog(child, (l) => l.exit_code === 1 && l.level === 50 && l.tick_at !== undefined, 20_000);
      expect(failed.msg).toMatch(/^the run for tick \S+ failed (before it was recorded|\(exit 1\) and the ledger cannot be read)/);
      await admin.query(`ALTER DATABASE ${admin.escapeIdentifier(t.name)} ALLOW_CONNECTIONS true`);
      const ok = await waitForLog(child, (l) => l.exit_code === 0 && /^run \d+ for tick \S+ succeeded$/.test(String(l.msg)), 20_000);
      child.kill('SIGTERM');
      expect((await child.result).code).toBe(0);
      expect((await ledger()).find((x) => x.run_id === ok.run_id)?.status).toBe('succeeded');
    } finally {
      await admin.query(`ALTER DATABASE ${admin.escapeIdentifier(t.name)} ALLOW_CONNECTIONS true`).catch(() => undefined);
      await admin.end();
    }
  });

  describe('missed runs (a ledger of their own: schema "catchup")', () => {
    beforeAll(async () => {
      const c = await t.pool.connect();
      try {
        await migrate(c, 'catchup');
      } finally {
        c.release();
      }
    });

    // Yearly, 00:00 on 1 January UTC: its latest tick is months ago, and no run of this schema is for it.
    const yearly = ['--cron', '0 0 1 1 *', '--timezone', 'UTC'];

    it('without --catch-up: logs that the latest tick was missed and starts nothing', async () => {
      await knob(0);
      const child = schedule(yearly, 'catchup');
      const line = await waitForLog(child, (l) => l.missed === true);
      expect(line.msg).toMatch(
        /^start-up: tick \d{4}-01-01T00:00:00Z has no run: a run was missed; start one with `scorejob run`, or restart the scheduler with --catch-up$/,
      );
      // That line is the start-up check's decision, its last word: nothing runs until the next tick, months away.
      child.kill('SIGTERM');
      const r = await child.result;
      expect(r.code).toBe(0);
      expect(msgs(r).filter((m) => /run started in child process/.test(m))).toEqual([]);
      expect(await ledger('catchup')).toEqual([]);
    });

    it('with --catch-up: runs for that tick at once; restarted, finds it done', async () => {
      const tick = previousTick({ expression: '0 0 1 1 *', timezone: 'UTC' }, new Date()) as Date;
      const child = schedule([...yearly, '--catch-up'], 'catchup');
      const run = await waitFor('the catch-up run', async () => (await ledger('catchup')).find((x) => x.status === 'succeeded'));
      expect(run).toMatchObject({ trigger: 'schedule', tick_at: tick });
      child.kill('SIGTERM');
      const r = await child.result;
      expect(r.code).toBe(0);
      expect(msgs(r).some((m) => /^start-up: tick \S+ has no run; catching up now \(--catch-up\)$/.test(m))).toBe(true);

      const again = schedule([...yearly, '--catch-up'], 'catchup');
      const done = await waitForLog(again, (l) => l.reason === 'done');
      expect(done.msg).toMatch(new RegExp(`^start-up: tick \\S+ already has succeeded run ${run.run_id} \\(schedule,`));
      again.kill('SIGTERM');
      expect((await again.result).code).toBe(0);
      expect(await ledger('catchup')).toHaveLength(1);
    });
  });

  it('takes every option of `run` a scheduled run needs (--help lists them) and refuses a wrong one at start-up, naming the flag or the variable', async () => {
    const help = await runCliInProcess(['schedule', '--help'], t.env);
    expect(help.code).toBe(0);
    for (const flag of [
      '--model',
      '--chunk-size',
      '--backend',
      '--keep-runs',
      '--max-reject-ratio',
      '--chunk-attempts',
      '--max-psi',
      '--metrics-file',
      '--progress-interval',
    ]) {
      expect(help.stdout).toContain(flag);
    }
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['--max-psi', 'much'], {}, /^scorejob: --max-psi: "much" is not a number between 0 and 1000/],
      [['--progress-interval', '0.001'], {}, /^scorejob: --progress-interval: "0\.001" is not 0/],
      [['--metrics-file', '/nonexistent-dir/x.prom'], {}, /^scorejob: --metrics-file: .*does not exist/],
      [[], { SCOREJOB_METRICS_FILE: '/nonexistent-dir/x.prom' }, /^scorejob: SCOREJOB_METRICS_FILE: .*does not exist/],
    ];
    for (const [args, env, message] of cases) {
      const r = await runCliInProcess(['schedule', ...args], { ...t.env, ...env });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('passes the run options given as flags on to its runs (--metrics-file, --max-psi reach the child)', async () => {
    const c = await t.pool.connect();
    try {
      await migrate(c, 'forwarded');
    } finally {
      c.release();
    }
    await knob(0);
    const metrics = join(await mkdtemp(join(tmpdir(), 'sj-fwd-')), 'scorejob.prom');
    const child = schedule(['--cron', '0 0 1 1 *', '--timezone', 'UTC', '--catch-up', '--metrics-file', metrics, '--max-psi', '1000'], 'forwarded');
    const reported = waitForLog(child, (l) => /^run \d+ for tick \S+ succeeded$/.test(String(l.msg)));
    const started = await waitForLog(child, (l) => String(l.msg).startsWith('scheduler started'));
    expect(started.run_args).toEqual(expect.arrayContaining(['--metrics-file', metrics, '--max-psi', '1000']));
    const run = await reported;
    expect((await ledger('forwarded')).map((x) => [x.run_id, x.status])).toEqual([[run.run_id, 'succeeded']]);
    child.kill('SIGTERM');
    expect((await child.result).code).toBe(0);
    // The child wrote the metrics file it was given: the flag reached it.
    expect(await readFile(metrics, 'utf8')).toMatch(/^scorejob_last_run_\w+/m);
  });

  it('refuses a bad --cron or --timezone at start-up: exit 2, one line naming the flag', async () => {
    const bad = await runCliInProcess(['schedule', '--cron', '61 2 1 * *'], t.env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^scorejob: --cron: "61 2 1 \* \*" is not a cron expression \(minute: /);
    const zone = await runCliInProcess(['schedule', '--timezone', 'Europe/Atlantis'], t.env);
    expect(zone.code).toBe(2);
    expect(zone.stderr).toMatch(/^scorejob: --timezone: "Europe\/Atlantis" is not a time zone/);
  });
});

describe('scorejob run --if-due (cron lines that fire more often than the schedule)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 500, seed: 3 });
  });
  afterAll(async () => t.drop());

  const monthlyBerlin = ['--if-due', '0 0 1 * *', '--timezone', 'Europe/Berlin'];
  const runs = async () => (await t.pool.query<LedgerRun>('SELECT run_id::text, status, trigger, tick_at FROM scoring.score_runs ORDER BY run_id')).rows;

  it('runs for the latest tick once; then exits 0 without running until a run for it fails', async () => {
    const tick = previousTick({ expression: '0 0 1 * *', timezone: 'Europe/Berlin' }, new Date()) as Date;
    const first = await runCliInProcess(['--no-pretty', 'run', '--trigger', 'cron', ...monthlyBerlin], t.env);
    expect(first.code).toBe(0);
    expect(await runs()).toMatchObject([{ status: 'succeeded', trigger: 'cron', tick_at: tick }]);

    const second = await runCliInProcess(['--no-pretty', 'run', '--trigger', 'cron', ...monthlyBerlin], t.env);
    expect(second.code).toBe(0);
    expect(second.logs.find((l) => l.reason === 'done')?.msg).toMatch(
      /^not due: tick \d{4}-\d{2}-01T00:00:00\+0[12]:00 already has succeeded run 1 \(cron, started /,
    );
    expect(await runs()).toHaveLength(1);

    // The month's run turns out failed and cannot be resumed (its scores were dropped): due again, a new run.
    await t.pool.query(`UPDATE scoring.score_runs SET status = 'failed', error_kind = 'database' WHERE run_id = 1`);
    await t.pool.query(`DELETE FROM scoring.score_publications`);
    await t.pool.query(`SELECT scoring.refresh_score_views()`).catch(() => undefined);
    await t.pool.query(`ALTER TABLE scoring.score_data DETACH PARTITION scoring.score_data_1`);
    await t.pool.query(`DROP TABLE scoring.score_data_1`);
    const third = await runCliInProcess(['--no-pretty', 'run', '--trigger', 'cron', ...monthlyBerlin], t.env);
    expect(third.code, third.stderr).toBe(0);
    expect(third.logs.find((l) => l.due === true)?.reason).toBe('failed');
    expect(third.logs.some((l) => /^run 1 cannot be resumed \(the scores of run 1 are gone/.test(String(l.msg)))).toBe(true);
    expect((await runs()).map((r) => r.status)).toEqual(['failed', 'succeeded']);
  });

  it('a run for the tick still in progress (lock held): exit 75, nothing done', async () => {
    // A tick (passed with --tick-at, as the scheduler does) later than every run so far, whose run is "in flight" elsewhere.
    const tick = previousTick({ expression: '*/10 * * * * *', timezone: 'UTC' }, new Date(Date.now() + 60_000)) as Date;
    const holder = await holdRunLock(t);
    try {
      await t.pool.query(
        `INSERT INTO scoring.score_runs (status, trigger, model_name, model_version, model_sha256, backend, tick_at, host, pid)
         VALUES ('running', 'schedule', 'customer-value', '1', 'x', 'cpu', $1, 'elsewhere', 1)`,
        [tick],
      );
      const before = (await runs()).length;
      const r = await runCliInProcess(['run', '--trigger', 'cron', '--if-due', '*/10 * * * * *', '--timezone', 'UTC', '--tick-at', tick.toISOString()], t.env);
      expect(r.code).toBe(75);
      expect(r.stderr).toMatch(/is in progress \(pid 1 on elsewhere\); nothing was done, try later/);
      expect(await runs()).toHaveLength(before);
    } finally {
      await holder.release();
    }
  });

  it('refuses a bad expression naming --if-due, and --timezone without --if-due', async () => {
    const bad = await runCliInProcess(['run', '--if-due', 'monthly'], t.env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^scorejob: --if-due: "monthly" is not a cron expression/);
    const tz = await runCliInProcess(['run', '--timezone', 'UTC'], t.env);
    expect(tz.code).toBe(2);
    expect(tz.stderr).toMatch(/^scorejob: --timezone: "UTC" only applies with --if-due/);
  });
});
