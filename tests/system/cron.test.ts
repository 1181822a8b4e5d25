import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { previousTick } from '../../src/cronTicks.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { repoRoot, runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdRunLock } from '../helpers/hold.js';
import { modelCopy } from '../helpers/run.js';
import { waitUntil } from '../helpers/waitUntil.js';

/**
 * The repo's `crontab` under a real cron daemon (Debian's `cron`): its job line, fired every minute
 * from /etc/cron.d with the environment the file sets (PATH to node, DATABASE_URL from a chmod 600
 * file, the working directory, a log file), must leave a succeeded run with trigger `cron` in the
 * ledger. Needs root (to install and start cron and to write /etc/cron.d); skipped, with the reason
 * printed, where that is impossible.
 */

const cronDaemon = '/usr/sbin/cron';

/** Installs cron when absent; the reason it cannot, or undefined. */
function ensureCron(): string | undefined {
  if (process.platform !== 'linux') return `cron test needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'cron test needs root (to install and start cron and write /etc/cron.d)';
  if (existsSync(cronDaemon)) return undefined;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'cron'], { env, encoding: 'utf8' });
  if (r.status !== 0) {
    spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update'], { env, encoding: 'utf8' });
    r = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'cron'], { env, encoding: 'utf8' });
  }
  if (r.error || r.status !== 0 || !existsSync(cronDaemon))
    return `cannot install cron: ${r.error?.message ?? (r.stderr || r.stdout).trim().split('\n').at(-1)}`;
  return undefined;
}

/** Whether a cron daemon already runs (Debian's pid file names a live process). */
async function cronRunning(): Promise<boolean> {
  try {
    const pid = Number((await readFile('/var/run/crond.pid', 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
    // A stale pid file may name a pid the system gave to another process since: only a live cron counts.
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return /^\d+ \(cron\) [^Z]/.test(stat);
  } catch {
    return false;
  }
}

/**
 * The repo's crontab as an /etc/cron.d file: its variable lines with the given values, and its one
 * job line, unchanged but for the schedule (every minute) and the user field cron.d files have.
 */
async function cronDFromRepoCrontab(
  values: Record<string, string>,
  user = 'root',
  variants: readonly string[] = [],
): Promise<{ text: string; command: string }> {
  const lines = (await readFile(join(repoRoot, 'crontab'), 'utf8')).split('\n');
  const out: string[] = [];
  const jobs: string[] = [];
  for (const line of lines) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const assignment = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (assignment) {
      const name = assignment[1] as string;
      out.push(`${name}=${values[name] ?? assignment[2]}`);
      continue;
    }
    jobs.push(line);
  }
  expect(jobs, 'the repo crontab has exactly one active job line').toHaveLength(1);
  const m = /^\s*(\S+\s+){5}(.*)$/.exec(jobs[0] as string);
  const command = (m?.[2] ?? '').trim();
  expect(command).toContain('scorejob');
  for (const [name, value] of Object.entries(values)) if (!out.some((l) => l.startsWith(`${name}=`))) out.push(`${name}=${value}`);
  out.push(`* * * * * ${user} ${command}`);
  // The same line again, each with variables of its own set before the command (sh's `NAME=value cmd`).
  for (const prefix of variants) out.push(`* * * * * ${user} ${prefix} ${command}`);
  return { text: `${out.join('\n')}\n`, command };
}

/**
 * A stand-in for the MTA: cron pipes each mail to /usr/sbin/sendmail; this one files it under mailDir.
 * Installed only where no sendmail exists (a real MTA is never replaced), and removed afterwards.
 */
const sendmail = '/usr/sbin/sendmail';
const mailDir = '/var/tmp/scorejob-test-mail';
const stubMark = '# scorejob test stub';
async function installSendmailStub(): Promise<'installed' | 'present' | 'foreign'> {
  if (existsSync(sendmail)) return (await readFile(sendmail, 'utf8').catch(() => '')).includes(stubMark) ? 'present' : 'foreign';
  await mkdir(mailDir, { recursive: true });
  await writeFile(sendmail, `#!/bin/sh\n${stubMark}\ncat > "${mailDir}/$(date +%s%N)-$$.eml"\n`, { mode: 0o755 });
  return 'installed';
}
async function mailsMentioning(token: string): Promise<string[]> {
  const names = await readdir(mailDir).catch(() => [] as string[]);
  const mails = await Promise.all(names.map((n) => readFile(join(mailDir, n), 'utf8').catch(() => '')));
  return mails.filter((m) => m.includes(token));
}

const unavailable = ensureCron();
if (unavailable) console.warn(`SKIPPED tests/system/cron.test.ts: ${unavailable}`);

/**
 * One cron.d file, four copies of the repo's job line firing in the same minute, each on a database
 * (or env file) of its own: a run that succeeds; a run that fails its publish gate (a model that
 * scores NaN: exit 1); a run that finds the lock held (exit 75); and an env file that does not exist.
 */
describe.skipIf(unavailable !== undefined)('the repo crontab under a real cron daemon', () => {
  let t: TestDatabase;
  let failing: TestDatabase;
  let locked: TestDatabase;
  /** Its month's run failed half-way (the database went away): the line resumes it. */
  let healing: TestDatabase;
  let healingRun: string;
  let lock: { release: () => Promise<void> } | undefined;
  let dir: string;
  let cronFile: string;
  let startedCron: ChildProcess | undefined;
  let stub: 'installed' | 'present' | 'foreign' = 'foreign';

  beforeAll(async () => {
    [t, failing, locked, healing] = await Promise.all([createTestDatabase(), createTestDatabase(), createTestDatabase(), createTestDatabase()]);
    await Promise.all([t, failing, locked, healing].map((db) => seedCustomers(db.pool, { customers: 2000, seed: 9 })));
    // The month's run of the line's own expression, then made a run that failed half-way: chunks 3.. undone.
    const made = await runCli(['--no-pretty', 'run', '--trigger', 'cron', '--chunk-size', '500', '--if-due', '30 2 1 * *'], healing.env);
    expect(made.code, made.stderr).toBe(0);
    healingRun = String(made.logs.find((l) => typeof l.run_id === 'string')?.run_id);
    await healing.pool.query(`UPDATE scoring.score_runs SET status = 'failed', error_kind = 'database', error = 'connection lost (test)' WHERE run_id = $1`, [
      healingRun,
    ]);
    await healing.pool.query(`UPDATE scoring.score_chunks SET status = 'pending' WHERE run_id = $1 AND chunk_no >= 3`, [healingRun]);
    await healing.pool.query(
      `DELETE FROM scoring."score_data_${healingRun}" WHERE customer_id > (SELECT key_lo FROM scoring.score_chunks WHERE run_id = $1 AND chunk_no = 3)`,
      [healingRun],
    );
    lock = await holdRunLock(locked);
    dir = await mkdtemp(join(tmpdir(), 'sj-cron-'));
    const envFile = join(dir, 'scorejob.env');
    await writeFile(envFile, `DATABASE_URL='${t.url}'\n`, { mode: 0o600 });
    // A model whose output bias is NaN scores every customer NaN: all rejected, the reject gate fails the run.
    const nanModel = await modelCopy();
    const weights = join(nanModel, 'weights.bin');
    const bytes = await readFile(weights);
    bytes.writeFloatLE(Number.NaN, bytes.length - 4);
    await writeFile(weights, bytes);
    await writeFile(join(dir, 'failing.env'), `DATABASE_URL='${failing.url}'\nSCOREJOB_MODEL_DIR='${nanModel}'\n`, { mode: 0o600 });
    await writeFile(join(dir, 'locked.env'), `DATABASE_URL='${locked.url}'\n`, { mode: 0o600 });
    await writeFile(join(dir, 'healing.env'), `DATABASE_URL='${healing.url}'\n`, { mode: 0o600 });
    stub = await installSendmailStub();
    // cron.d file names may hold only letters, digits, _ and -.
    cronFile = `/etc/cron.d/scorejob-test-${randomBytes(4).toString('hex')}`;
    const { text } = await cronDFromRepoCrontab(
      {
        PATH: `${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
        SCOREJOB_HOME: repoRoot,
        SCOREJOB_ENV: envFile,
        SCOREJOB_LOG: join(dir, 'scorejob.log'),
        MAILTO: 'root',
      },
      'root',
      [
        `SCOREJOB_ENV=${dir}/failing.env SCOREJOB_LOG=${dir}/failing.log`,
        `SCOREJOB_ENV=${dir}/locked.env SCOREJOB_LOG=${dir}/locked.log`,
        `SCOREJOB_ENV=${dir}/missing.env SCOREJOB_LOG=${dir}/missing.log`,
        `SCOREJOB_ENV=${dir}/healing.env SCOREJOB_LOG=${dir}/healing.log`,
      ],
    );
    await writeFile(cronFile, text, { mode: 0o644 });
    await chmod(cronFile, 0o644);
    await ensureCronRunning();
  });

  /** Starts cron unless one runs (another test run may have started one, or stopped its own meanwhile). */
  async function ensureCronRunning(): Promise<void> {
    if (await cronRunning()) return;
    const daemon = spawn(cronDaemon, ['-f'], { stdio: 'ignore' });
    // Up once its pid file names a live cron (this one, or another that won the race); or it exited.
    await waitUntil('cron writes its pid file or exits', async () => daemon.exitCode !== null || (await cronRunning()), 30_000);
    if (daemon.exitCode === null) startedCron = daemon;
    else if (!(await cronRunning())) throw new Error(`cron -f exited at once (code ${daemon.exitCode}) and no other cron runs`);
  }

  afterAll(async () => {
    if (cronFile) await rm(cronFile, { force: true });
    // Only the daemon this file started; one that was running before stays.
    if (startedCron?.pid !== undefined && startedCron.exitCode === null) startedCron.kill('SIGTERM');
    if (stub === 'installed') await rm(sendmail, { force: true });
    await lock?.release();
    if (dir) await rm(dir, { recursive: true, force: true });
    await Promise.all([t?.drop(), failing?.drop(), locked?.drop(), healing?.drop()]);
  });

  const firstRun = async (db: TestDatabase) =>
    (
      await db.pool.query<{ run_id: string; status: string; trigger: string; tick_at: Date | null }>(
        `SELECT run_id::text, status, trigger, tick_at FROM scoring.score_runs WHERE status <> 'running' ORDER BY run_id LIMIT 1`,
      )
    ).rows[0];

  // cron reads a new /etc/cron.d file at a minute's start and fires its lines at the next one it
  // checks: on a loaded machine the first firing can come a little over two minutes after the file.
  it('fires the crontab line and leaves a succeeded run with trigger cron in the ledger within three minutes', async () => {
    const deadline = Date.now() + 190_000;
    let run: Awaited<ReturnType<typeof firstRun>>;
    while (Date.now() < deadline) {
      run = await firstRun(t);
      if (run) break;
      await ensureCronRunning();
      await new Promise((r) => setTimeout(r, 1000));
    }
    const log = await readFile(join(dir, 'scorejob.log'), 'utf8').catch(() => '(no log file)');
    const mails = stub === 'foreign' ? [] : await mailsMentioning(`${dir}/scorejob.env`);
    expect(run, `no run within three minutes; ${cronFile}:\n${await readFile(cronFile, 'utf8')}\nlog:\n${log}\nmails:\n${mails.join('\n')}`).toBeDefined();
    expect(run, log).toMatchObject({ status: 'succeeded', trigger: 'cron' });
    // --if-due in the line: the run is for the month's tick (02:30 on the 1st, the machine's time zone).
    expect(run?.tick_at).toEqual(previousTick({ expression: '30 2 1 * *' }, new Date()));
    expect(log).toMatch(/"msg":"due: tick \S+ has no run/);
  }, 260_000);

  it('mails a failed run: the exit code, the reason with the run id, and the next step; a short subject', async (ctx) => {
    if (stub === 'foreign') ctx.skip(`${sendmail} is a real MTA: not replaced`);
    let mails: string[] = [];
    await waitUntil('cron mails the failed run', async () => (mails = await mailsMentioning(`${dir}/failing.env`)).length > 0, 130_000);
    const run = await firstRun(failing);
    expect(run).toMatchObject({ status: 'failed' });
    const mail = mails[0] as string;
    const subject = /^Subject: (.*)$/m.exec(mail)?.[1] ?? '';
    expect(subject.length, subject).toBeLessThan(200);
    expect(mail).toMatch(/^scorejob run exited 1 on /m);
    expect(mail).toContain(`run ${run?.run_id} failed`);
    expect(mail).toMatch(/rejected 100\.00% of rows/);
    // The advice of this gate failure (nothing scored): fix the model or the data; never "resume it".
    expect(mail).toContain('fix the model or the data, then start a new run');
    expect(mail).not.toMatch(/resume/);
    expect(mail).toMatch(new RegExp(`^What to do: .*\`scorejob runs show ${run?.run_id}\``, 'm'));
  }, 150_000);

  it("resumes the month's failed run (the same run, its unfinished chunks), and sends no mail", async (ctx) => {
    let rows: { run_id: string; status: string; resumes: number }[] = [];
    await waitUntil(
      'cron resumes the failed run',
      async () => {
        rows = (
          await healing.pool.query<{ run_id: string; status: string; resumes: number }>(
            `SELECT run_id::text, status, resumes FROM scoring.score_runs ORDER BY run_id`,
          )
        ).rows;
        return rows[0]?.status === 'succeeded';
      },
      130_000,
    );
    expect(rows).toEqual([{ run_id: healingRun, status: 'succeeded', resumes: 1 }]);
    const log = await readFile(join(dir, 'healing.log'), 'utf8');
    expect(log).toContain(`resuming run ${healingRun} from its first unfinished chunk`);
    expect(log).toContain(`"msg":"run ${healingRun} resumed: 2 of 4 chunks left"`);
    if (stub !== 'foreign') expect(await mailsMentioning(`${dir}/healing.env`)).toEqual([]);
    else ctx.skip(`${sendmail} is a real MTA: the mail is not checked`);
  }, 150_000);

  it('a gate-stopped run is mailed once: the firings after it exit 0 without a mail and start no run', async (ctx) => {
    if (stub === 'foreign') ctx.skip(`${sendmail} is a real MTA: not replaced`);
    await waitUntil('cron mails the failed run', async () => (await mailsMentioning(`${dir}/failing.env`)).length > 0, 130_000);
    // A later firing (one a minute) of the same line finds the run waiting.
    const fired = async () => ((await readFile(join(dir, 'failing.log'), 'utf8').catch(() => '')).match(/"reason":"waiting"/g) ?? []).length;
    await waitUntil('a later firing finds the run waiting', async () => (await fired()) >= 1, 150_000);
    await new Promise((r) => setTimeout(r, 2000)); // cron mails as the job ends
    expect(await mailsMentioning(`${dir}/failing.env`)).toHaveLength(1);
    const runs = (await failing.pool.query(`SELECT status, error_kind FROM scoring.score_runs`)).rows;
    expect(runs).toEqual([{ status: 'failed', error_kind: 'gate' }]);
  }, 300_000);

  it('sends no mail when the lock is held (exit 75), and explains a missing env file', async (ctx) => {
    if (stub === 'foreign') ctx.skip(`${sendmail} is a real MTA: not replaced`);
    let missing: string[] = [];
    await waitUntil('cron mails the missing env file', async () => (missing = await mailsMentioning(`${dir}/missing.env`)).length > 0, 130_000);
    expect(missing[0]).toMatch(/the env file SCOREJOB_ENV=\S+missing\.env does not exist: create it .* DATABASE_URL=/);
    // The locked line fired in the same minute: its log has the refusal, and no mail names its env file.
    await waitUntil('the locked line logs its refusal', async () => /lock/i.test(await readFile(join(dir, 'locked.log'), 'utf8').catch(() => '')), 60_000);
    await new Promise((r) => setTimeout(r, 2000)); // cron mails as the job ends
    expect(await mailsMentioning(`${dir}/locked.env`)).toEqual([]);
    expect(await firstRun(locked)).toBeUndefined();
  }, 200_000);
});
