import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { repoRoot, runCli } from '../helpers/cli.js';
import { modelCopy } from '../helpers/run.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * bin/scorejob-cron under the real /bin/sh (dash on Debian, what cron runs), with the little environment
 * cron gives: its env-file checks, and the report it prints (which cron mails). The daemon itself is
 * tests/system/cron.test.ts.
 */
interface WrapperResult {
  code: number | null;
  /** What cron would mail. */
  out: string;
  /** The job's log file (SCOREJOB_LOG): empty when the job never ran. */
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

async function envFile(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text, { mode: 0o600 });
  return file;
}

describe('bin/scorejob-cron checks its env file and the connection before running the job', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    dir = await mkdtemp(join(tmpdir(), 'sj-cronwrap-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    await t?.drop();
  });

  const notMigrated = async () => (await t.pool.query<{ n: string }>(`SELECT count(*) AS n FROM pg_namespace WHERE nspname = 'scoring'`)).rows[0]!.n === '0';

  it('SCOREJOB_ENV naming a directory: exit 2, says so, the job not run', async () => {
    const folder = join(dir, 'etc-scorejob');
    await mkdir(folder);
    const r = await wrapper(['migrate'], { SCOREJOB_ENV: folder });
    expect(r.code).toBe(2);
    expect(r.out).toMatch(
      new RegExp(`^scorejob-cron: the env file SCOREJOB_ENV=${folder} is a directory, not a file: name the file in it \\(e\\.g\\. ${folder}/scorejob\\.env\\)`),
    );
    expect(r.out).toContain('Nothing was run (exit 2).');
    expect(r.log).toBe('');
    expect(await notMigrated()).toBe(true);
  });

  it('a misspelt DATABSE_URL: exit 2, the near-miss named with its line; corrected as it says, the job runs', async () => {
    const file = await envFile('typo.env', `# the job's database\nDATABSE_URL='${t.url}'\nSCOREJOB_LOG_LEVEL=info\n`);
    const r = await wrapper(['migrate'], { SCOREJOB_ENV: file });
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/no database connection is set after loading .*typo\.env/);
    expect(r.out).toContain(`${file} line 2 sets DATABSE_URL: did you mean DATABASE_URL?`);
    expect(r.log).toBe('');
    expect(await notMigrated()).toBe(true);
    await writeFile(file, `# the job's database\nDATABASE_URL='${t.url}'\nSCOREJOB_LOG_LEVEL=info\n`);
    const fixed = await wrapper(['migrate'], { SCOREJOB_ENV: file });
    expect(fixed.code, fixed.out).toBe(0);
    expect(fixed.out).toBe('');
    expect(await notMigrated()).toBe(false);
  });

  it('an unquoted & in a URL: a warning naming the line; the assignment it backgrounded is reported missing (exit 2)', async () => {
    const url = new URL(t.url);
    url.search = '?sslmode=disable&application_name=scorejob';
    const file = await envFile('amp.env', `DATABASE_URL=${url.toString()}\n`);
    const r = await wrapper(['runs'], { SCOREJOB_ENV: file });
    expect(r.code).toBe(2);
    expect(r.out).toContain(
      `scorejob-cron: warning: ${file} line 1 has an unquoted & (the shell runs the part before it in the background, so that variable is not set): put the value in single quotes, NAME='…'`,
    );
    expect(r.out).toMatch(/no database connection is set after loading/);
    expect(r.log).toBe('');
    await writeFile(file, `DATABASE_URL='${url.toString()}'\n`);
    const fixed = await wrapper(['runs'], { SCOREJOB_ENV: file });
    expect(fixed.out).not.toMatch(/warning/);
    expect(fixed.log).not.toMatch(/no database configured/);
  });

  it('an env file the shell cannot parse: exit 2 naming the file, the job not run', async () => {
    const file = await envFile('broken.env', `DATABASE_URL='${t.url}\n`);
    const r = await wrapper(['migrate'], { SCOREJOB_ENV: file });
    expect(r.code).toBe(2);
    expect(r.out).toMatch(
      new RegExp(`scorejob-cron: the env file ${file} is not valid sh .*: quote each value, NAME='value'\\. Nothing was run \\(exit 2\\)\\.`),
    );
    expect(r.log).toBe('');
  });

  it('no SCOREJOB_ENV and no connection in the crontab: exit 2 saying how to set one', async () => {
    const r = await wrapper(['run', '--trigger', 'cron'], {});
    expect(r.code).toBe(2);
    expect(r.out).toMatch(
      /^scorejob-cron: no database connection is set \(none of DATABASE_URL, PGHOST, PGDATABASE\): set SCOREJOB_ENV in the crontab to a file with a line DATABASE_URL='postgres:\/\/…'/,
    );
    expect(r.log).toBe('');
  });

  it('a job that fails before creating a run: the mail has no `runs show <run-id>` placeholder, and says what to do', async () => {
    const file = await envFile('down.env', `DATABASE_URL='postgres://job@127.0.0.1:1/crm'\n`);
    const r = await wrapper(['run', '--trigger', 'cron'], { SCOREJOB_ENV: file });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^scorejob run exited 1 on /m);
    expect(r.out).toContain('cannot connect to PostgreSQL job@127.0.0.1:1/crm');
    expect(r.out).not.toContain('<run-id>');
    expect(r.out).not.toContain('runs show');
    expect(r.out).toMatch(/^What to do: no run was created \(nothing to resume\): fix what the line above names; the next firing tries again\.$/m);
    expect(r.out).not.toContain('run_id');
  });
});

describe('bin/scorejob-cron and a run a publish gate stopped', () => {
  let t: TestDatabase;
  let nanModel: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 500, seed: 2 });
    dir = await mkdtemp(join(tmpdir(), 'sj-cronwrap-'));
    // A model whose output bias is NaN: every row rejected, the reject gate stops the run.
    nanModel = await modelCopy();
    const bytes = await readFile(join(nanModel, 'weights.bin'));
    bytes.writeFloatLE(Number.NaN, bytes.length - 4);
    await writeFile(join(nanModel, 'weights.bin'), bytes);
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    await t?.drop();
  });

  it('the first firing that finds it waiting for a person mails one report (exit 0); the next firings mail nothing and run nothing', async () => {
    // Run by hand (not by a tick): nobody was told by cron yet.
    const manual = await runCli(['--no-pretty', 'run', '--model', nanModel], t.env);
    expect(manual.code).toBe(1);
    const id = (await t.pool.query<{ id: string }>(`SELECT max(run_id)::text AS id FROM scoring.score_runs`)).rows[0]?.id;
    const env = { SCOREJOB_ENV: await envFile('gated.env', `DATABASE_URL='${t.url}'\nSCOREJOB_MODEL_DIR='${nanModel}'\n`) };
    // The yearly tick (1 January, 00:00 UTC); the manual run is made one that started after it.
    const args = ['run', '--trigger', 'cron', '--if-due', '0 0 1 1 *', '--timezone', 'UTC'];
    await t.pool.query(`UPDATE scoring.score_runs SET started_at = date_trunc('year', now()) + interval '1 hour' WHERE run_id = $1`, [id]);
    const first = await wrapper(args, env);
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/^scorejob run exited 0 on /m);
    expect(first.out).toMatch(
      new RegExp(
        `^  scorejob: run ${id} for tick \\S+ was stopped by a publish gate and waits for a person: review it \\(\`scorejob runs show ${id}\`\\), then \`scorejob publish ${id} --force\``,
        'm',
      ),
    );
    expect(first.out).toMatch(/^What to do: a person decides/m);
    for (let i = 0; i < 2; i++) {
      const later = await wrapper(args, env);
      expect(later.code).toBe(0);
      expect(later.out).toBe('');
      expect(later.log).toContain('"reason":"waiting"');
    }
    expect((await t.pool.query(`SELECT count(*)::int AS n FROM scoring.score_runs`)).rows[0]?.n).toBe(1);
  }, 120_000);
});
