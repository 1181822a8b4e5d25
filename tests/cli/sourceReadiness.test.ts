import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { repoRoot, runCli, startCli, waitForLog } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy } from '../helpers/run.js';

/**
 * Source readiness (manifest `source.ready_when`), through the real cron wrapper and the real
 * `scorejob schedule`: a tick before the upstream load writes nothing and sends no mail (exit 75); past
 * `--ready-deadline` it is a stale_source failure cron mails; the first tick after the load publishes.
 */

interface WrapperResult {
  code: number | null;
  /** What cron would mail. */
  out: string;
  log: string;
}

let dir: string;
let n = 0;

async function wrapper(args: string[], env: Record<string, string>): Promise<WrapperResult> {
  const log = join(dir, `job-${++n}.log`);
  const child = spawn('/bin/sh', [join(repoRoot, 'bin/scorejob-cron'), ...args], {
    cwd: '/',
    env: { PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, HOME: dir, SCOREJOB_LOG: log, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, out, log: await readFile(log, 'utf8').catch(() => '') };
}

// NULL while load_log is empty (max of nothing): not ready, like false.
const readyWhen = `SELECT max(loaded_at) >= date_trunc('month', now()) FROM load_log`;
const monthly = ['--if-due', '0 0 1 * *', '--timezone', 'UTC'];

describe('source.ready_when holds runs and ticks until the upstream load is done', () => {
  let t: TestDatabase;
  let model: string;
  let metrics: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    dir = await mkdtemp(join(tmpdir(), 'sj-ready-'));
    metrics = join(dir, 'scorejob.prom');
    await seedCustomers(t.pool, { customers: 2000, seed: 5 });
    await t.pool.query('CREATE TABLE load_log (loaded_at timestamptz NOT NULL)');
    model = await modelCopy((m) => void (m.source = { ...(m.source ?? {}), ready_when: readyWhen }));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    await t?.drop();
  });

  const written = async () => ({
    runs: Number((await t.pool.query('SELECT count(*) FROM scoring.score_runs')).rows[0]?.count),
    scores: Number((await t.pool.query('SELECT count(*) FROM scoring.customer_scores')).rows[0]?.count),
  });
  const cron = (extra: string[] = []) =>
    wrapper(['run', '--trigger', 'cron', '--model', model, '--chunk-size', '500', '--metrics-file', metrics, ...monthly, ...extra], t.env);

  it('before the load: exit 75, no mail, nothing written, scorejob_source_ready 0, one line naming the query and the database', async () => {
    const r = await cron();
    expect(r.code).toBe(75);
    expect(r.out).toBe('');
    expect(await written()).toEqual({ runs: 0, scores: 0 });
    expect(r.log).toContain(
      `scorejob: source not ready: source.ready_when of ${join(model, 'manifest.json')} returned NULL on ${t.db.user}@${t.db.host}:${t.db.port}/${t.db.database}; nothing was done, a later firing tries again`,
    );
    const prom = await readFile(metrics, 'utf8');
    expect(prom).toMatch(/^scorejob_source_ready\{model="customer-value"\} 0$/m);
    expect(prom).toMatch(/^scorejob_source_stale\{model="customer-value"\} 0$/m);
  }, 60_000);

  it('past --ready-deadline after the tick: a stale_source failure cron mails (exit 1), still nothing written', async () => {
    // The monthly tick was on the 1st; an hour's deadline is long past, 400 days is not.
    const late = await cron(['--ready-deadline', '1h']);
    expect(late.code).toBe(1);
    expect(late.out).toMatch(/^scorejob run exited 1 on /);
    expect(late.out).toMatch(
      /source not ready past the deadline: source\.ready_when of \S+ returned NULL on \S+, \S+ after the tick \(--ready-deadline 1h00m after the tick \S+\); nothing was written/,
    );
    expect(await written()).toEqual({ runs: 0, scores: 0 });
    expect(await readFile(metrics, 'utf8')).toMatch(/^scorejob_source_stale\{model="customer-value"\} 1$/m);

    const early = await cron(['--ready-deadline', '90d']);
    expect(early.code).toBe(75);
    expect(early.out).toBe('');
  }, 60_000);

  it('a query that is not one boolean, or a deadline without a tick, is refused (exit 2) naming what to fix', async () => {
    const two = await modelCopy((m) => void (m.source = { ...(m.source ?? {}), ready_when: 'SELECT true, false' }));
    const r = await runCli(['--no-pretty', 'run', '--model', two], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('source.ready_when must return one row with one boolean column; on');
    const plain = await runCli(['--no-pretty', 'run', '--model', model, '--ready-deadline', '6h'], t.env);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain('--ready-deadline counts from the tick: use it with --if-due EXPR');
    expect(await written()).toEqual({ runs: 0, scores: 0 });
  }, 60_000);

  it('a load in progress that holds a lock on what the query reads is "not ready" (exit 75, no mail), not an error', async () => {
    const loader = await t.pool.connect();
    try {
      // What a loader that truncates and reloads in one transaction holds until it commits.
      await loader.query('BEGIN; LOCK TABLE load_log IN ACCESS EXCLUSIVE MODE');
      const r = await cron();
      expect(r.code).toBe(75);
      expect(r.out).toBe('');
      expect(r.log).toContain('source.ready_when of');
      expect(r.log).toContain('waited 10 s for a lock (a load in progress holds what it reads)');
    } finally {
      await loader.query('ROLLBACK');
      loader.release();
    }
    expect(await written()).toEqual({ runs: 0, scores: 0 });
  }, 60_000);

  it('the first cron tick after the load publishes (exit 0, no mail)', async () => {
    await t.pool.query('INSERT INTO load_log VALUES (now())');
    const r = await cron(['--ready-deadline', '1h']);
    expect(r.code, r.log).toBe(0);
    expect(r.out).toBe('');
    expect(await written()).toEqual({ runs: 1, scores: 2000 });
    expect(await readFile(metrics, 'utf8')).toMatch(/^scorejob_last_run_success\{model="customer-value"\} 1$/m);
  }, 60_000);

  it('scorejob schedule: ticks before the load skip quietly; the first tick after it publishes', async () => {
    await t.pool.query('TRUNCATE load_log');
    const child = startCli(['--no-pretty', '--log-level', 'info', 'schedule', '--model', model, '--chunk-size', '500', '--cron', '*/2 * * * * *'], t.env);
    try {
      await waitForLog(child, (l) => /^tick \S+ skipped: another run holds the lock, or the source is not ready \(exit 75/.test(String(l.msg)));
      expect((await written()).runs).toBe(1);
      await t.pool.query('INSERT INTO load_log VALUES (now())');
      await waitForLog(child, (l) => /^run \d+ for tick \S+ succeeded$/.test(String(l.msg)));
    } finally {
      child.kill('SIGTERM');
      await child.result;
    }
    expect(await written()).toEqual({ runs: 2, scores: 2000 });
  }, 90_000);
});
