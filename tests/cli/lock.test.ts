import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { startCli, waitForLog } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { adminUrl, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdAtChunk, holdRunAtChunkWrite, runStatus, startHeldRun, waitUntil } from '../helpers/hold.js';
import { publishedSnapshot } from '../helpers/state.js';

/**
 * Guarantee 3: at most one run writes at a time, held by a lock that no role without write access to
 * the scoring schema can take or block, and that a live run never loses (issue 11, items 8 and 9).
 */
describe('the run lock', () => {
  let t: TestDatabase;
  let baseline: Map<string, number>;
  const suffix = randomBytes(4).toString('hex');
  const job = `scorejob_job_${suffix}`;
  const reader = `scorejob_reader_${suffix}`;
  const password = `pw-${suffix}`;

  const scores = async () => (await publishedSnapshot(t)).scores;
  const terminate = (appName: string) =>
    t.pool.query<{ n: number }>(
      `SELECT count(pg_terminate_backend(pid))::int n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
      [appName],
    );
  const runsJson = async () => {
    const r = await runCliInProcess(['runs', '--json'], t.env);
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as { run_id: string; status: string }[];
  };

  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    await seedCustomers(t.pool, { customers: 3000, seed: 11 });
    // sql/roles.sql as written (names made unique: roles are cluster-wide), then migrate as the job's role.
    const sql = (await readFile(new URL('../../sql/roles.sql', import.meta.url), 'utf8')).replaceAll('scorejob_job', job).replaceAll('scorejob_reader', reader);
    await t.pool.query(sql);
    // Passwords: the server may require them (embedded PostgreSQL does; the machine's PostgreSQL 15 trusts).
    await t.pool.query(`ALTER ROLE ${job} PASSWORD '${password}'`);
    await t.pool.query(`CREATE ROLE ${reader}_login LOGIN PASSWORD '${password}' IN ROLE ${reader}`);
    const env = { DATABASE_URL: urlAs(job) };
    const migrated = await runCliInProcess(['migrate'], env);
    expect(migrated.stderr).toBe('');
    expect(migrated.code).toBe(0);
    await t.pool.query(sql); // part 2: the reader's grants
    t.env = env; // every scorejob in this file runs as the least-privilege job role
    expect((await runCliInProcess(['run', '--chunk-size', '1000'], t.env)).code).toBe(0);
    baseline = await scores();
  });
  afterAll(async () => {
    await t?.drop();
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    for (const r of [`${reader}_login`, reader, job]) await admin.query(`DROP ROLE IF EXISTS ${r}`).catch(() => undefined);
    await admin.end();
  });

  function urlAs(role: string): string {
    const u = new URL(t.url);
    u.username = role;
    u.password = password;
    return u.toString();
  }

  it('a reader holding pg_advisory_lock with the old run key cannot block a run; it cannot take, lock or see the lock table', async () => {
    const r = new pg.Client({ connectionString: urlAs(`${reader}_login`) });
    await r.connect();
    try {
      // The old lock: classid 0x5c0c, objid hashtext(schema). Advisory locks need no privilege.
      await r.query(`SELECT pg_advisory_lock(${0x5c0c}, hashtext('scoring'))`);
      await r.query(`SELECT pg_advisory_lock(${0x5c0b}, hashtext('scoring'))`); // the migrate key too
      const run = await runCliInProcess(['run', '--chunk-size', '1000'], t.env);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      // The new lock is a row only the job's role can write; row locks need UPDATE, LOCK TABLE a privilege.
      await expect(r.query('SELECT * FROM scoring.run_locks')).rejects.toMatchObject({ code: '42501' });
      await expect(r.query('SELECT 1 FROM scoring.run_locks FOR KEY SHARE')).rejects.toMatchObject({ code: '42501' });
      await expect(r.query(`UPDATE scoring.run_locks SET token = NULL`)).rejects.toMatchObject({ code: '42501' });
      await expect(r.query(`INSERT INTO scoring.run_locks (name) VALUES ('x')`)).rejects.toMatchObject({ code: '42501' });
      await r.query('BEGIN');
      await expect(r.query('LOCK TABLE scoring.run_locks IN ACCESS SHARE MODE')).rejects.toMatchObject({ code: '42501' });
      await r.query('ROLLBACK');
    } finally {
      await r.end();
    }
    expect(await scores()).toEqual(baseline);
  });

  it('the ledger connection terminated mid-run: the run keeps its lock, a second run exits 75, runs marks nothing, the run succeeds', async () => {
    const { child, runId } = await startHeldRun(t);
    const hold = await holdRunAtChunkWrite(t, child, runId, 3);
    try {
      const lostLine = waitForLog(child, (l) => /ledger connection was lost/.test(String(l.msg)));
      expect((await terminate('scorejob ledger')).rows[0]?.n).toBe(1);
      const lost = await lostLine;
      expect(lost.level).toBe(40);
      const second = await runCliInProcess(['run'], t.env);
      expect(second.stderr).toMatch(new RegExp(`another run holds the lock on .*: run ${runId} \\(pid \\d+ on `));
      expect(second.code).toBe(75);
      expect((await runsJson()).find((r) => r.run_id === runId)?.status).toBe('running');
      expect(await runStatus(t, runId)).toMatchObject({ status: 'running' });
    } finally {
      await hold.release();
    }
    const r = await child.result;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await runStatus(t, runId)).toMatchObject({ status: 'succeeded', error: null });
    expect(await scores()).toEqual(baseline);
  });

  it('the lock connection terminated mid-run: the run takes its lock back within the grace; meanwhile a second run exits 75 and runs marks nothing', async () => {
    const { child, runId } = await startHeldRun(t);
    const hold = await holdRunAtChunkWrite(t, child, runId, 3);
    try {
      const lostLine = waitForLog(child, (l) => /lock connection was lost/.test(String(l.msg)));
      expect((await terminate('scorejob lock')).rows[0]?.n).toBe(1);
      // Right away, before the run has re-registered (it may already have): never "dead".
      expect((await runsJson()).find((r) => r.run_id === runId)?.status).toBe('running');
      const second = await runCliInProcess(['run'], t.env);
      expect(second.code).toBe(75);
      expect(second.stderr).toMatch(new RegExp(`: run ${runId} \\(pid \\d+ on `));
      expect((await lostLine).level).toBe(40);
      await waitUntil('the run to re-register its lock', async () => {
        const { rows } = await t.pool.query<{ ok: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM scoring.run_locks l JOIN pg_stat_activity a ON a.pid = l.backend_pid WHERE l.run_id = $1 AND a.application_name = 'scorejob lock') ok`,
          [runId],
        );
        return rows[0]?.ok ? true : undefined;
      });
      expect((await runsJson()).find((r) => r.run_id === runId)?.status).toBe('running');
      expect((await runCliInProcess(['run'], t.env)).code).toBe(75);
    } finally {
      await hold.release();
    }
    const r = await child.result;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await runStatus(t, runId)).toMatchObject({ status: 'succeeded' });
    expect(await scores()).toEqual(baseline);
  });

  it('idle_session_timeout = 3s on the role: a run longer than 3 s succeeds', async () => {
    await t.pool.query(`ALTER ROLE ${job} SET idle_session_timeout = '3s'`);
    try {
      // The run is held inside chunk 2's commit for 4 s: the writer waits on the hold, while the ledger
      // connection sits idle through it, and the server would end that session after 3 s.
      const hold = await holdAtChunk(t.pool, 2);
      const t0 = Date.now();
      const child = startCli(['run', '--chunk-size', '100'], t.env);
      try {
        await hold.held();
        await new Promise((r) => setTimeout(r, 4000));
      } finally {
        await hold.release();
      }
      const r = await child.result;
      expect(Date.now() - t0).toBeGreaterThan(4000);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.logs.some((l) => /connection was lost/.test(String(l.msg)))).toBe(false);
      expect(await scores()).toEqual(baseline);
    } finally {
      await t.pool.query(`ALTER ROLE ${job} RESET idle_session_timeout`);
    }
  });

  it('kill -9 mid-run: resume gets the lock within the grace (saying it waits) and completes', async () => {
    const { child, runId } = await startHeldRun(t);
    const hold = await holdRunAtChunkWrite(t, child, runId, 3);
    child.kill('SIGKILL');
    await child.result;
    await hold.release();
    const t0 = Date.now();
    const resumed = await runCliInProcess(['resume', runId], t.env);
    const took = Date.now() - t0;
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(took).toBeLessThan(20_000);
    const wait = resumed.logs.find((l) => /waiting up to \d+ s/.test(String(l.msg)));
    if (wait) expect(wait.level).toBe(30);
    const resumedAt = resumed.logs.find((l) => /resumed/.test(String(l.msg)));
    const firstAt = resumed.logs[0];
    expect(Number(resumedAt?.time) - Number(firstAt?.time)).toBeLessThan(8_000); // grace 6 s + start-up
    expect(await runStatus(t, runId)).toMatchObject({ status: 'succeeded' });
    expect(await scores()).toEqual(baseline);
  });

  it('a lock held far longer than a normal run: exit 69 at error level naming the holder; stopping the holder as advised frees it', async () => {
    const { child, runId } = await startHeldRun(t);
    const hold = await holdRunAtChunkWrite(t, child, runId, 3);
    let stuck;
    try {
      // The holder still renews its lease, but has held the lock for 2 hours.
      await t.pool.query(`UPDATE scoring.run_locks SET acquired_at = now() - interval '2 hours' WHERE run_id = $1`, [runId]);
      stuck = await runCliInProcess(['run'], t.env);
    } finally {
      // Follow the advice: stop the holder (it finishes the chunk in flight, then stops, resumable).
      child.kill('SIGTERM');
      await hold.release();
    }
    expect(stuck.code).toBe(69);
    expect(stuck.stderr).toMatch(new RegExp(`run ${runId} \\(pid ${child.pid} on .*\\) has held the lock .* for 2h0\\dm, far longer than a normal run`));
    expect(stuck.stderr).toMatch(new RegExp(`stop it \\(\`kill ${child.pid}\` on `));
    expect(stuck.stderr.trim().split('\n')).toHaveLength(1);
    expect(stuck.logs.find((l) => /far longer than a normal run/.test(String(l.msg)))?.level).toBe(50);
    expect((await child.result).code).toBe(143);
    const next = await runCliInProcess(['resume', runId], t.env);
    expect(next.stderr).toBe('');
    expect(next.code).toBe(0);
    expect(await scores()).toEqual(baseline);
  });
  it('a frozen run whose lock was taken over stops without writing: exit 1, left interrupted, its done chunks unchanged', async () => {
    const { child, runId } = await startHeldRun(t);
    const hold = await holdRunAtChunkWrite(t, child, runId, 3);
    child.kill('SIGSTOP'); // frozen: it cannot renew its lease or re-register
    let taker;
    let doneBefore: number;
    try {
      expect((await terminate('scorejob lock')).rows[0]?.n).toBe(1);
      doneBefore = (await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM scoring.score_chunks WHERE run_id = $1 AND status = 'done'`, [runId]))
        .rows[0]?.n as number;
      taker = await runCliInProcess(['run', '--chunk-size', '1000'], t.env); // waits out the grace, takes the lock over
    } finally {
      child.kill('SIGCONT');
      await hold.release();
    }
    expect(taker.stderr).toBe('');
    expect(taker.code).toBe(0);
    expect(taker.logs.some((l) => new RegExp(`run ${runId} had stopped without a word; marked interrupted`).test(String(l.msg)))).toBe(true);
    const r = await child.result;
    expect(r.code).toBe(1);
    expect(await runStatus(t, runId)).toMatchObject({ status: 'interrupted' });
    const doneAfter = (await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM scoring.score_chunks WHERE run_id = $1 AND status = 'done'`, [runId]))
      .rows[0]?.n;
    expect(doneAfter).toBe(doneBefore);
    expect((await publishedSnapshot(t)).runs).toEqual([taker.logs.find((l) => /started/.test(String(l.msg)))?.run_id]);
  });
});
