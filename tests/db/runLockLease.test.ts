import { Writable } from 'node:stream';
import { hostname } from 'node:os';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resolveDb } from '../../src/config.js';
import { createPool } from '../../src/db/pool.js';
import { withTransaction } from '../../src/db/sql.js';
import { LockedError, LockLostError, LockStuckError } from '../../src/errors.js';
import { modelLockName, runHolderState, runLockHeld, runLockName, stuckAfterMs, takeRunLock, type RunLock } from '../../src/ledger/runLock.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { createTestDatabase, urlFor, type TestDatabase } from '../helpers/db.js';

interface Line {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A logger whose lines the test reads (pino's JSON, as the job writes it). */
function capturingLog(): { log: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

const timing = { beatMs: 1_000, leaseMs: 30_000, graceMs: 1_000 };
const model = 'lease-model';
const name = modelLockName(model);

/**
 * The run lock's lease and fence (src/ledger/runLock.ts) at their edges: a live holder, one whose lease just
 * ran out, one whose connection just dropped (the grace), a dead one, a stuck one, and a holder taken over.
 */
describe('the run lock: lease, grace and fence', () => {
  let t: TestDatabase;
  let pool: pg.Pool;
  const held: RunLock[] = [];
  const take = async (log = capturingLog().log, over: Partial<typeof timing> = {}) => {
    const lock = await takeRunLock(pool, { schema: 'scoring', modelName: model, purpose: 'run', log, where: 'db/test', timing: { ...timing, ...over } });
    held.push(lock);
    return lock;
  };
  const row = async () =>
    (
      await t.pool.query<{
        token: string | null;
        run_id: string | null;
        purpose: string | null;
        host: string | null;
        pid: number | null;
        lease_ms: number | null;
      }>(
        `SELECT token::text, run_id::text, purpose, host, pid, (extract(epoch FROM lease_until - now()) * 1000)::int AS lease_ms FROM scoring.run_locks WHERE name = $1`,
        [name],
      )
    ).rows[0];
  /** runLockHeld on a connection of the test's (the due check's question). */
  const heldNow = async (lockName = name) => {
    const c = await t.pool.connect();
    try {
      return await runLockHeld(c, 'scoring', lockName);
    } finally {
      c.release();
    }
  };
  /** Writes the lock row as another process would have left it. */
  const leave = (set: string, params: unknown[] = []) =>
    t.pool.query(
      `INSERT INTO scoring.run_locks (name) VALUES ($1) ON CONFLICT (name) DO NOTHING;
       UPDATE scoring.run_locks SET token = gen_random_uuid(), run_id = NULL, purpose = 'run', host = 'other-host', pid = 4242, acquired_at = now(), ${set} WHERE name = '${name}'`.replace(
        '$1',
        `'${name}'`,
      ),
      params,
    );

  beforeAll(async () => {
    t = await createTestDatabase();
    pool = createPool(t.db, 6);
  });
  beforeEach(async () => {
    for (const l of held.splice(0)) await l.release();
    await t.pool.query('DELETE FROM scoring.run_locks');
  });
  afterAll(async () => {
    for (const l of held.splice(0)) await l.release();
    await pool.end();
    await t.drop();
  });

  it('a free lock is taken with the lease asked for, and released to nobody', async () => {
    const lock = await take();
    expect(await row()).toMatchObject({ token: lock.token, run_id: null, purpose: 'run', host: hostname(), pid: process.pid });
    const lease = (await row())?.lease_ms ?? 0;
    expect(lease).toBeGreaterThan(25_000);
    expect(lease).toBeLessThanOrEqual(30_000);
    expect(await heldNow()).toBe(true);
    expect(await heldNow(runLockName)).toBe(false); // the schema-wide lock of version 3 is another row
    await lock.release();
    expect(await row()).toMatchObject({ token: null, run_id: null });
    expect((await row())?.lease_ms ?? 1).toBeLessThanOrEqual(0);
    expect(await heldNow()).toBe(false);
  });

  it('a live holder keeps it: the second taker exits 75 naming the holder, and is logged at warn', async () => {
    const first = await take();
    const { log, lines } = capturingLog();
    const err = (await take(log).catch((e: unknown) => e)) as LockedError;
    expect(err).toBeInstanceOf(LockedError);
    expect(err.exitCode).toBe(75);
    expect(err.message).toMatch(
      new RegExp(
        `^another run holds the lock on db/test schema "scoring": \`scorejob run\` \\(pid ${process.pid} on ${hostname()}, holding the lock since \\d{4}-.*Z\\); nothing was done, try later$`,
      ),
    );
    const warn = lines.find((l) => l.level === 40);
    expect(warn).toMatchObject({
      holder_pid: process.pid,
      holder_host: hostname(),
      held_s: 0,
      msg: expect.stringMatching(/^another run holds the lock: `scorejob run` \(pid /),
    });
    expect(warn).not.toHaveProperty('holder_run_id');
    // Once it works on a run, the message names the run.
    const c = await pool.connect();
    await withTransaction(c, (tx) => first.attachRun(tx, '77')).finally(() => c.release());
    expect((await row())?.run_id).toBe('77');
    expect(await runHolderState(t.pool, 'scoring', '77')).toBe('alive');
    expect(await runHolderState(t.pool, 'scoring', '78')).toBe('none');
    const second = capturingLog();
    expect(((await take(second.log).catch((e: unknown) => e)) as Error).message).toMatch(/: run 77 \(pid \d+ on .*, holding the lock since/);
    expect(second.lines.find((l) => l.level === 40)).toMatchObject({ holder_run_id: '77' });
  });

  it('a holder that retires a model, or left no purpose, is named by its command', async () => {
    await leave(`heartbeat_at = now(), lease_until = now() + interval '1 minute'`);
    // The row's backend is a connection this test keeps open: alive.
    const conn = await t.pool.connect();
    try {
      await conn.query(
        `UPDATE scoring.run_locks SET purpose = 'retire', acquired_at = NULL, backend_pid = pg_backend_pid(), backend_start = (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()) WHERE name = $1`,
        [name],
      );
      expect(((await take().catch((e: unknown) => e)) as Error).message).toMatch(/: `scorejob model retire` \(pid 4242 on other-host\); nothing was done/);
      await conn.query(`UPDATE scoring.run_locks SET purpose = NULL WHERE name = $1`, [name]);
      expect(((await take().catch((e: unknown) => e)) as Error).message).toMatch(/: `scorejob run` \(pid 4242 on other-host\); nothing was done/);
    } finally {
      conn.release();
    }
  });

  it('a holder whose lease ran out while its backend lives (hung) is taken over, with a warning; one millisecond of lease left is not', async () => {
    const conn = await t.pool.connect();
    try {
      const alive = `backend_pid = pg_backend_pid(), backend_start = (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()), heartbeat_at = now() - interval '1 minute'`;
      await conn.query(`INSERT INTO scoring.run_locks (name) VALUES ($1)`, [name]);
      await conn.query(
        `UPDATE scoring.run_locks SET token = gen_random_uuid(), purpose = 'run', host = 'h', pid = 9, acquired_at = now(), ${alive}, lease_until = now() + interval '400 milliseconds' WHERE name = $1`,
        [name],
      );
      expect(await take().catch((e: unknown) => e)).toBeInstanceOf(LockedError);
      await new Promise((r) => setTimeout(r, 450));
      const { log, lines } = capturingLog();
      const lock = await take(log);
      expect((await row())?.token).toBe(lock.token);
      expect(lines.find((l) => l.level === 40)).toMatchObject({
        holder_pid: 9,
        holder_host: 'h',
        msg: expect.stringMatching(/stopped renewing its lease while connected \(hung\?\); taking the lock over$/),
      });
    } finally {
      conn.release();
    }
  });

  it('a dead holder (backend gone, heartbeat older than the grace) is replaced at once, without a warning', async () => {
    await leave(`backend_pid = 0, heartbeat_at = now() - interval '1100 milliseconds', lease_until = now() + interval '1 minute'`);
    const { log, lines } = capturingLog();
    const started = Date.now();
    const lock = await take(log);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect((await row())?.token).toBe(lock.token);
    expect(lines.filter((l) => l.level >= 30 && /holder/.test(l.msg))).toEqual([]);
  });

  it('a holder whose connection just dropped gets the rest of its grace: the taker waits, says so once, then takes the lock', async () => {
    await leave(`backend_pid = 0, heartbeat_at = now() - interval '300 milliseconds', lease_until = now() + interval '1 minute'`);
    expect(await runHolderState(t.pool, 'scoring', '5')).toBe('none');
    await t.pool.query(`UPDATE scoring.run_locks SET run_id = 5 WHERE name = $1`, [name]);
    expect(await runHolderState(t.pool, 'scoring', '5')).toBe('grace');
    const hb = Number(
      (await t.pool.query<{ ms: string }>(`SELECT (extract(epoch FROM heartbeat_at) * 1000)::bigint::text AS ms FROM scoring.run_locks`)).rows[0]?.ms,
    );
    const { log, lines } = capturingLog();
    const started = Date.now();
    const lock = await take(log, { graceMs: 1_000 });
    const waited = Date.now() - started;
    const info = lines.filter((l) => l.level === 30 && /lost its database connection/.test(l.msg));
    expect(info).toHaveLength(1);
    const waitMs = info[0]?.wait_ms as number;
    // The rest of the grace plus 100 ms: 1000 - (the heartbeat's age when the taker looked, its log line's time) + 100.
    expect(Math.abs(waitMs - (1_100 - ((info[0]?.time as number) - hb)))).toBeLessThan(80);
    expect(info[0]).toMatchObject({ holder_pid: 4242, holder_host: 'other-host', holder_run_id: '5' });
    expect(info[0]?.msg).toMatch(/run 5 \(pid 4242 on other-host, .*waiting up to 1 s for it to come back before taking the lock$/);
    expect(waited).toBeGreaterThanOrEqual(waitMs - 5);
    expect((await row())?.token).toBe(lock.token);
  });

  it('a holder that shows a sign of life during the wait is waited for again, and the wait is said only once', async () => {
    await leave(`backend_pid = 0, heartbeat_at = now(), lease_until = now() + interval '1 minute'`);
    const { log, lines } = capturingLog();
    const taking = take(log, { graceMs: 600 });
    await new Promise((r) => setTimeout(r, 300));
    await t.pool.query(`UPDATE scoring.run_locks SET heartbeat_at = now() WHERE name = $1`, [name]);
    const lock = await taking;
    expect(lines.filter((l) => l.level === 30 && /lost its database connection/.test(l.msg))).toHaveLength(1);
    expect((await row())?.token).toBe(lock.token);
  });

  it('with the ledger, the acquiring transaction reports the runs of dead holders, and the stuck limit follows the longest recent run', async () => {
    const ledger = new Ledger('scoring');
    const lockOpts = () => ({ schema: 'scoring', modelName: model, purpose: 'run' as const, log: capturingLog().log, where: 'db/test', timing });
    const dead: string[][] = [];
    await t.pool.query(
      `INSERT INTO scoring.score_runs (status, trigger, model_name, model_version, model_sha256, backend, host, pid, started_at, finished_at, heartbeat_at)
       VALUES ('succeeded', 'manual', $1, '1', 'x', 'wasm', 'h', 1, now() - interval '2 hours', now() - interval '30 minutes', now()),
              ('running', 'manual', $1, '1', 'x', 'wasm', 'h', 1, now() - interval '10 minutes', NULL, now() - interval '5 minutes')`,
      [model],
    );
    const first = await takeRunLock(pool, {
      ...lockOpts(),
      ledger,
      onDead: (ids) => dead.push(ids),
    });
    held.push(first);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toHaveLength(1);
    await t.pool.query(`UPDATE scoring.run_locks SET acquired_at = now() - interval '4 hours' WHERE name = $1`, [name]);
    const err = (await takeRunLock(pool, {
      ...lockOpts(),
      ledger,
    }).catch((e: unknown) => e)) as Error;
    // 3 x 1h30 = 4h30: held 4 h is busy, not stuck.
    expect(err).toBeInstanceOf(LockedError);
    await t.pool.query(`UPDATE scoring.run_locks SET acquired_at = now() - interval '5 hours' WHERE name = $1`, [name]);
    const stuck = (await takeRunLock(pool, {
      ...lockOpts(),
      ledger,
    }).catch((e: unknown) => e)) as Error;
    expect(stuck).toBeInstanceOf(LockStuckError);
    expect(stuck.message).toMatch(/\(limit 4h30m: 3 times the longest recent succeeded run \(1h30m\), at least 1 h\)/);
    // A ledger whose history cannot be read: the limit is the hour, said as with no run yet.
    const unreadable = (await takeRunLock(pool, {
      ...lockOpts(),
      ledger: new Ledger('no_such_schema'),
    }).catch((e: unknown) => e)) as Error;
    expect(unreadable.message).toMatch(/\(limit 1h00m: 3 times the longest recent succeeded run, none yet, at least 1 h\)/);
    // The ledger without onDead: the lock is taken all the same.
    for (const l of held.splice(0)) await l.release();
    held.push(await takeRunLock(pool, { ...lockOpts(), ledger }));
    expect((await row())?.token).toBe(held[0]?.token);
  });

  it('a holder taken over finds out when it makes sure of its lock (ensure), before any heartbeat', async () => {
    const lock = await take(undefined, { beatMs: 60_000 });
    await t.pool.query(`UPDATE scoring.run_locks SET token = gen_random_uuid() WHERE name = $1`, [name]);
    const err = await lock.ensure().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockLostError);
    expect(lock.lost).toBe(err);
  });

  it('a lock that cannot connect fails with the connection error, nothing else', async () => {
    const missing = createPool(resolveDb({ DATABASE_URL: urlFor('sj_test_no_such_database') }), 1);
    try {
      const err = (await takeRunLock(missing, { schema: 'scoring', modelName: model, purpose: 'run', log: capturingLog().log, where: 'db/test', timing }).catch(
        (e: unknown) => e,
      )) as Error;
      expect(err.message).toMatch(/database "sj_test_no_such_database" does not exist/);
    } finally {
      await missing.end();
    }
  });

  it('a holder taken over learns it from its next heartbeat and says so once, at error; it stops renewing', async () => {
    const { log, lines } = capturingLog();
    const old = await take(log, { beatMs: 100, leaseMs: 150 });
    await t.pool.query(`UPDATE scoring.run_locks SET token = gen_random_uuid() WHERE name = $1`, [name]);
    await new Promise((r) => setTimeout(r, 500));
    expect(old.lost).toBeInstanceOf(LockLostError);
    const errors = lines.filter((l) => l.level === 50);
    expect(errors).toEqual([expect.objectContaining({ lock: name, msg: expect.stringMatching(/^lost the run lock: another process took it over/) })]);
    expect(lines.filter((l) => /connection was lost/.test(l.msg))).toEqual([]);
  });

  it("a lock whose connection was cut reconnects and re-registers its new backend (application_name 'scorejob lock')", async () => {
    const lock = await take(undefined, { beatMs: 60_000 });
    const before = (await t.pool.query<{ pid: number }>('SELECT backend_pid AS pid FROM scoring.run_locks WHERE name = $1', [name])).rows[0]?.pid;
    const app = (await t.pool.query<{ a: string }>('SELECT application_name AS a FROM pg_stat_activity WHERE pid = $1', [before])).rows[0]?.a;
    expect(app).toBe('scorejob lock');
    await t.pool.query('SELECT pg_terminate_backend($1)', [before]);
    // No heartbeat in this test's time (beatMs 1 min): the reconnection itself re-registers the backend.
    const pidNow = async () => (await t.pool.query<{ pid: number }>('SELECT backend_pid AS pid FROM scoring.run_locks WHERE name = $1', [name])).rows[0]?.pid;
    for (let i = 0; i < 100 && (await pidNow()) === before; i++) await new Promise((r) => setTimeout(r, 50));
    const after = await pidNow();
    expect(after).not.toBe(before);
    expect((await t.pool.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [after])).rowCount).toBe(1);
    expect(lock.lost).toBeUndefined();
  });

  it('a holder kept for over an hour, still renewing, is stuck (exit 69); just under an hour it is only busy (exit 75)', async () => {
    await take();
    await t.pool.query(`UPDATE scoring.run_locks SET acquired_at = now() - interval '3599 seconds' WHERE name = $1`, [name]);
    expect(await take().catch((e: unknown) => e)).toBeInstanceOf(LockedError);
    await t.pool.query(`UPDATE scoring.run_locks SET acquired_at = now() - interval '3601 seconds' WHERE name = $1`, [name]);
    const { log, lines } = capturingLog();
    const err = (await take(log).catch((e: unknown) => e)) as LockStuckError;
    expect(err).toBeInstanceOf(LockStuckError);
    expect(err.exitCode).toBe(69);
    expect(err.message).toMatch(
      /has held the lock on db\/test schema "scoring" for 1h00m, far longer than a normal run \(limit 1h00m: 3 times the longest recent succeeded run, none yet, at least 1 h\)/,
    );
    expect(err.message).toMatch(new RegExp(`\\(\`kill ${process.pid}\` on ${hostname()};`));
    expect(lines.find((l) => l.level === 50)).toMatchObject({ held_s: 3601, holder_pid: process.pid });
  });

  it('the stuck limit is three times the longest recent run, and never under an hour', () => {
    expect(stuckAfterMs(null)).toBe(3_600_000);
    expect(stuckAfterMs(1_200_000)).toBe(3_600_000);
    expect(stuckAfterMs(1_200_001)).toBe(3_600_003);
    expect(stuckAfterMs(7_200_000)).toBe(21_600_000);
  });

  it('a holder taken over is fenced: its fence, run record and renewal fail, and its release leaves the new holder alone', async () => {
    const old = await take();
    await t.pool.query(`UPDATE scoring.run_locks SET lease_until = now() - interval '1 millisecond' WHERE name = $1`, [name]);
    const fresh = await take();
    const c = await pool.connect();
    try {
      const fenced = await withTransaction(c, (tx) => old.fence(tx)).catch((e: unknown) => e);
      expect(fenced).toBeInstanceOf(LockLostError);
      expect((fenced as Error).message).toMatch(/^lost the run lock: another process took it over .*; this process stops writing$/);
      expect(old.lost).toBe(fenced);
      await expect(withTransaction(c, (tx) => old.attachRun(tx, '9'))).rejects.toBe(fenced);
      await expect(old.ensure()).rejects.toBe(fenced);
      await withTransaction(c, (tx) => fresh.fence(tx));
      await fresh.ensure();
    } finally {
      c.release();
    }
    await old.release();
    expect((await row())?.token).toBe(fresh.token);
    expect(fresh.lost).toBeUndefined();
  });

  it('a holder that lost its lease and renews finds out, and an attach without the lock says it was taken over before the run was recorded', async () => {
    const lock = await take();
    await t.pool.query(`UPDATE scoring.run_locks SET token = gen_random_uuid() WHERE name = $1`, [name]);
    const c = await pool.connect();
    try {
      const err = await withTransaction(c, (tx) => lock.attachRun(tx, '3')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockLostError);
      expect((err as Error).message).toBe('lost the run lock: it was taken over before the run was recorded; this process stops writing');
    } finally {
      c.release();
    }
  });

  it('the heartbeat renews the lease before it runs out, and stops at release', async () => {
    const lock = await take(undefined, { beatMs: 100, leaseMs: 400 });
    await new Promise((r) => setTimeout(r, 900));
    const lease = (await row())?.lease_ms ?? 0;
    expect(lease).toBeGreaterThan(0);
    expect(await heldNow()).toBe(true);
    await lock.release();
    const { rows } = await t.pool.query<{ hb: Date | null }>('SELECT heartbeat_at AS hb FROM scoring.run_locks WHERE name = $1', [name]);
    await new Promise((r) => setTimeout(r, 300));
    const after = await t.pool.query<{ hb: Date | null }>('SELECT heartbeat_at AS hb FROM scoring.run_locks WHERE name = $1', [name]);
    expect(after.rows[0]?.hb).toEqual(rows[0]?.hb);
  });
});
