import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCli, startCli, waitForLog, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdRunAtChunkWrite, runStatus, startHeldRun } from '../helpers/hold.js';
import { startOwnServer, type OwnServer } from '../helpers/ownServer.js';
import { waitUntil } from '../helpers/waitUntil.js';

const customers = 3000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * README "What can go wrong": the database goes away under a run, as in a managed failover. This file owns
 * its server (tests/helpers/ownServer.ts), which it stops and starts again; never the shared one.
 */
describe('a database failover under a run', () => {
  let server: OwnServer;
  let t: TestDatabase;

  /** Every customer published once, by this run. */
  async function expectEveryCustomerOnce(runId: string): Promise<void> {
    const { rows } = await t.pool.query<{ n: number; distinct: number }>(
      'SELECT count(*)::int n, count(DISTINCT customer_id)::int AS distinct FROM scoring.customer_scores WHERE run_id = $1',
      [runId],
    );
    expect(rows[0]).toEqual({ n: customers, distinct: customers });
  }
  /** The test's pool lost its connections with the server: a new one. */
  async function reconnect(): Promise<void> {
    await t.pool.end().catch(() => undefined);
    const { createPool } = await import('../../src/db/pool.js');
    t.pool = createPool(t.db, 10);
    await waitUntil(
      'the server answers',
      async () =>
        (await t.pool
          .query('SELECT 1')
          .then(() => true)
          .catch(() => false)) || undefined,
      60_000,
      200,
    );
  }

  beforeAll(async () => {
    server = await startOwnServer();
    t = await createTestDatabase({ adminUrl: server.url });
    // Commits flushed locally: a crash (stop -m immediate) loses none the client was told of.
    await t.pool.query(`ALTER DATABASE ${pg.escapeIdentifier(t.name)} SET synchronous_commit = local`);
    await reconnect();
    await seedCustomers(t.pool, { customers, seed: 41 });
  });
  afterAll(async () => {
    await t?.drop();
    await server?.stop();
  });

  it('a crash after a chunk committed but before its reply: the retry settles it from the ledger and does not write it again', async () => {
    // Chunk 4's COMMIT is flushed, then waits for a synchronous standby that does not exist: committed on the
    // server, no reply to the client. Chunk 3, beside it on the other writer, waits before its done mark: not committed.
    await t.pool.query(`ALTER SYSTEM SET synchronous_standby_names = 'sj_test_nobody'`);
    await t.pool.query('SELECT pg_reload_conf()');
    await t.pool.query(`CREATE TABLE public.sj_test_hold (chunk_no int PRIMARY KEY, action text NOT NULL)`);
    await t.pool.query(`INSERT INTO public.sj_test_hold VALUES (3, 'lock'), (4, 'syncrep')`);
    await t.pool.query(`
      CREATE FUNCTION public.sj_test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE a text;
      BEGIN
        IF NEW.status = 'done' AND OLD.status <> 'done' THEN
          DELETE FROM public.sj_test_hold WHERE chunk_no = NEW.chunk_no RETURNING action INTO a;
          IF a = 'lock' THEN PERFORM pg_advisory_xact_lock(32343, 3); END IF;
          IF a = 'syncrep' THEN PERFORM set_config('synchronous_commit', 'on', true); END IF;
        END IF;
        RETURN NEW;
      END $$`);
    await t.pool.query(`CREATE TRIGGER sj_test_hold BEFORE UPDATE ON scoring.score_chunks FOR EACH ROW EXECUTE FUNCTION public.sj_test_hold()`);
    const holder = new pg.Client({ connectionString: t.url });
    await holder.connect();
    holder.on('error', () => undefined); // ended by the crash below
    await holder.query('SELECT pg_advisory_lock(32343, 3)');

    const child = startCli(['run', '--chunk-size', '300'], t.env);
    const started = await waitForLog(child, (l) => /started/.test(String(l.msg)));
    const runId = started.run_id as string;
    const waits = async (event: string) =>
      (
        await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM pg_stat_activity WHERE application_name = 'scorejob writer' AND wait_event = $1`, [
          event,
        ])
      ).rows[0]!.n > 0 || undefined;
    await waitUntil('chunk 4 committed, waiting for its standby', () => waits('SyncRep'));
    await waitUntil('chunk 3 waiting before its done mark', () => waits('advisory'));
    expect((await t.pool.query(`SELECT status FROM scoring.score_chunks WHERE run_id = $1 AND chunk_no IN (3, 4) ORDER BY chunk_no`, [runId])).rows).toEqual([
      { status: 'pending' },
      { status: 'pending' },
    ]);

    await server.halt('immediate');
    await sleep(1000);
    await server.start();
    const r = await child.result;
    await reconnect();
    await t.pool.query(`ALTER SYSTEM RESET synchronous_standby_names`);
    await t.pool.query('SELECT pg_reload_conf()');
    await t.pool.query('DROP TRIGGER sj_test_hold ON scoring.score_chunks');

    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.logs.some((l) => l.chunk === 4 && /committed although its reply was lost/.test(String(l.msg)))).toBe(true);
    const chunks = (
      await t.pool.query<{ chunk_no: number; status: string }>(`SELECT chunk_no, status FROM scoring.score_chunks WHERE run_id = $1 AND status <> 'done'`, [
        runId,
      ])
    ).rows;
    expect(chunks).toEqual([]);
    await expectEveryCustomerOnce(runId);
  });

  it('the server down for 8 s (longer than the old 3.5 s of retries): the run waits for it, says so, and succeeds', async () => {
    const { child, runId } = await startHeldRun(t, t.env, ['--progress-interval', '0.5']);
    const hold = await holdRunAtChunkWrite(t, child, runId, 3);
    await server.halt('fast');
    await hold.release();
    const downFor = 8000;
    await sleep(downFor);
    await server.start();
    const r: CliResult = await child.result;
    await reconnect();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.logs.some((l) => /the database is unreachable .*waiting for it/.test(String(l.msg)) && l.outage_budget_s === 60)).toBe(true);
    const waiting = r.logs.filter((l) => l.progress === true && typeof l.waiting_s === 'number');
    expect(waiting.length).toBeGreaterThan(0);
    expect(String(waiting.at(-1)?.msg)).toMatch(/waiting for the database \(\d+ s\)$/);
    expect(waiting.every((l) => l.eta_s === null)).toBe(true);
    expect(Math.max(...waiting.map((l) => l.waiting_s as number))).toBeGreaterThanOrEqual(5);
    // The wait used up no chunk's attempts.
    const attempts = await t.pool.query<{ max: number }>('SELECT max(attempts)::int max FROM scoring.score_chunks WHERE run_id = $1', [runId]);
    expect(attempts.rows[0]!.max).toBe(1);
    await expectEveryCustomerOnce(runId);
  });

  it('the server down for longer than --outage-budget: the run fails, recorded, and the resume finishes it', async () => {
    const { child, runId } = await startHeldRun(t, t.env, ['--outage-budget', '4']);
    const hold = await holdRunAtChunkWrite(t, child, runId, 3);
    await server.halt('fast');
    await hold.release();
    await sleep(6000);
    await server.start();
    const r = await child.result;
    await reconnect();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `^scorejob: run ${runId} failed: connection to \\S+ refused .*the database stayed unreachable for longer than the outage budget \\(4 s, --outage-budget\\) \\(during chunk \\d+\\); once the database is back, resume it with \`scorejob resume ${runId}\``,
      ),
    );
    expect(await runStatus(t, runId)).toMatchObject({ status: 'failed', error_kind: 'database' });
    const resumed = await runCli(['resume', runId], t.env);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    await expectEveryCustomerOnce(runId);
  });

  it('statement_timeout during publish advises raising it and resuming (not a smaller --chunk-size); following that publishes', async () => {
    // The publish's pointer move takes 2 s (a trigger on the ledger's table: a slow statement, not a mock) under a 1 s timeout.
    await t.pool.query(`CREATE FUNCTION public.sj_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$`);
    await t.pool.query(`CREATE TRIGGER sj_test_slow BEFORE INSERT ON scoring.published_run FOR EACH ROW EXECUTE FUNCTION public.sj_test_slow()`);
    await t.pool.query(`ALTER ROLE postgres SET statement_timeout = '1s'`);
    try {
      const r = await runCli(['run', '--chunk-size', '500'], t.env);
      const runId = r.logs.find((l) => /started/.test(String(l.msg)))?.run_id as string;
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        `scorejob: run ${runId} failed: a statement ran longer than statement_timeout and was canceled (during publish); ` +
          `raise statement_timeout for the job's role (ALTER ROLE "postgres" SET statement_timeout = '…'), then \`scorejob resume ${runId}\` (the publish statements grow with the run, not with --chunk-size)`,
      );
      // Following the advice.
      await t.pool.query(`ALTER ROLE "postgres" SET statement_timeout = '30s'`);
      const resumed = await runCli(['resume', runId], t.env);
      expect(resumed.stderr).toBe('');
      expect(resumed.code).toBe(0);
      await expectEveryCustomerOnce(runId);
    } finally {
      await t.pool.query(`ALTER ROLE postgres RESET statement_timeout`);
      await t.pool.query('DROP TRIGGER IF EXISTS sj_test_slow ON scoring.published_run');
    }
  });
});
