import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { repoRoot } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy } from '../helpers/run.js';

/**
 * A partial load under cron, through the real bin/scorejob-cron: the month's firing fails its input check
 * (exit 1, mailed with the figures and the run to look at), a later firing of the same month resumes the
 * run and so checks again, and once the source is whole it publishes without a mail.
 */
let dir: string;
let n = 0;

async function wrapper(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
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
  await readFile(log, 'utf8').catch(() => '');
  return { code, out };
}

describe('input checks under cron', () => {
  let t: TestDatabase;
  let model: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    dir = await mkdtemp(join(tmpdir(), 'sj-checkscron-'));
    await seedCustomers(t.pool, { customers: 2000, seed: 21 });
    await t.pool.query('CREATE TABLE customers_orig AS TABLE customers');
    model = await modelCopy((m) => void (m.checks = { row_count: {} }));
  }, 60_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    await t?.drop();
  });

  // Ticks of an every-second schedule stand for months: a run started after a tick covers it, so each "month" is a tick after the previous run.
  const firing = (tick: string) =>
    wrapper(['run', '--trigger', 'cron', '--model', model, '--chunk-size', '500', '--if-due', '* * * * * *', '--timezone', 'UTC', '--tick-at', tick], t.env);
  const nextTick = async () => {
    await new Promise((r) => setTimeout(r, 1100));
    return new Date(Math.floor(Date.now() / 1000) * 1000).toISOString();
  };
  const runs = async () =>
    (
      await t.pool.query<{ run_id: string; status: string; error_kind: string | null; resumes: number }>(
        'SELECT run_id::text, status, error_kind, resumes FROM scoring.score_runs ORDER BY run_id',
      )
    ).rows;

  it("a month whose source lost 30% fails with the figures and a mail; the month's next firings check again, and publish once it is whole", async () => {
    expect(await firing(await nextTick())).toEqual({ code: 0, out: '' });
    await t.pool.query('DELETE FROM customers WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY customer_id LIMIT 600)');

    const month = await nextTick();
    const failed = await firing(month);
    expect(failed.code).toBe(1);
    expect(failed.out).toMatch(/^scorejob run exited 1 on /);
    expect(failed.out).toContain('scorejob: run 2 failed: input check failed: row_count: 1,400 rows vs 2,000 in run 1 (−30.0%), limit 20%; fix the source');
    expect(failed.out).toContain('`scorejob runs show 2` has the details');
    expect(await runs()).toMatchObject([{ status: 'succeeded' }, { run_id: '2', status: 'failed', error_kind: 'input_check' }]);

    const again = await firing(month);
    expect(again.code).toBe(1);
    expect(again.out).toContain('scorejob: run 2 failed: input check failed: row_count: 1,400 rows');

    await t.pool.query('TRUNCATE customers; INSERT INTO customers SELECT * FROM customers_orig');
    expect(await firing(month)).toEqual({ code: 0, out: '' });
    expect(await runs()).toMatchObject([{ status: 'succeeded' }, { run_id: '2', status: 'succeeded', resumes: 2 }]);
    expect(Number((await t.pool.query('SELECT count(*) FROM scoring.customer_scores WHERE run_id = 2')).rows[0]?.count)).toBe(2000);
  }, 120_000);
});
