import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/pool.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCli, startCli, waitForLog, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitUntil } from '../helpers/hold.js';
import { startOwnServer, type OwnServer } from '../helpers/ownServer.js';
import { jobWaitsOnLock } from '../helpers/waitUntil.js';
import { ledgerState, expectRefusedUnchanged, judgePolls, publishedSnapshot, startReader } from '../helpers/state.js';

/**
 * README "What can go wrong": the database and the environment. This file owns its PostgreSQL (password
 * authentication, so every output can be checked for the password; restartable): of TEST_DATABASE_URL's
 * version when that is set, embedded PostgreSQL otherwise (tests/helpers/ownServer.ts).
 */
describe('what can go wrong: the database', () => {
  let server: OwnServer;
  let t: TestDatabase;
  let password: string;
  let baseline: Map<string, number>;
  const outputs: CliResult[] = [];

  const cli = async (args: string[], env: Record<string, string> = t.env): Promise<CliResult> => {
    const r = await runCli(args, env);
    outputs.push(r);
    return r;
  };
  const scores = async (): Promise<Map<string, number>> => (await publishedSnapshot(t)).scores;
  const runId = (log: Record<string, unknown>) => log.run_id as string;

  /** A run with tiny chunks (seconds long), once `chunks` chunks have committed. */
  async function slowRun(chunks: number, env: Record<string, string> = t.env, extra: string[] = []) {
    const child = startCli(['run', '--chunk-size', '20', ...extra], env);
    const started = await waitForLog(child, (l) => /started/.test(String(l.msg)));
    if (chunks > 0) await waitForLog(child, (l) => typeof l.chunks_done === 'number' && l.chunks_done >= chunks);
    return { child, runId: runId(started) };
  }

  async function resumeAndCheck(id: string): Promise<void> {
    const r = await cli(['resume', id]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await scores()).toEqual(baseline);
  }

  beforeAll(async () => {
    server = await startOwnServer();
    password = decodeURIComponent(new URL(server.url).password);
    t = await createTestDatabase({ adminUrl: server.url });
    await seedCustomers(t.pool, { customers: 6000, seed: 31 });
    expect((await cli(['run'])).code).toBe(0);
    baseline = await scores();
  });
  afterAll(async () => {
    await t?.drop();
    await server?.stop();
  });

  it('a role without SELECT on the source is refused (exit 2), naming what it cannot read', async () => {
    await t.pool.query(`CREATE ROLE sj_nosel LOGIN PASSWORD '${password}'`);
    await t.pool.query(`GRANT USAGE, CREATE ON SCHEMA scoring TO sj_nosel; GRANT ALL ON ALL TABLES IN SCHEMA scoring TO sj_nosel`);
    const url = new URL(t.url);
    url.username = 'sj_nosel';
    const before = await ledgerState(t);
    const r = await cli(['run'], { DATABASE_URL: url.toString() });
    await expectRefusedUnchanged(t, before, r, /cannot read (key )?column \w+ of customers: sj_nosel has no SELECT privilege on it/);
  });

  it('a role without rights on the scoring schema is refused (exit 2), pointing at sql/roles.sql', async () => {
    await t.pool.query(`CREATE ROLE sj_noscoring LOGIN PASSWORD '${password}'; GRANT SELECT ON customers TO sj_noscoring`);
    const url = new URL(t.url);
    url.username = 'sj_noscoring';
    const before = await ledgerState(t);
    const r = await cli(['run'], { DATABASE_URL: url.toString() });
    await expectRefusedUnchanged(t, before, r, /no rights on schema "scoring".*sql\/roles\.sql/);
  });

  it('a read-only database is refused (exit 2) before anything is tried', async () => {
    await t.pool.query(`ALTER DATABASE ${t.name} SET default_transaction_read_only = on`);
    const before = await ledgerState(t);
    try {
      const r = await cli(['run']);
      await expectRefusedUnchanged(t, before, r, /is read-only \(default_transaction_read_only is on/);
    } finally {
      const c = await t.pool.connect();
      await c.query('SET default_transaction_read_only = off');
      await c.query(`ALTER DATABASE ${t.name} RESET default_transaction_read_only`);
      c.release(true); // its session was read-only by default: do not reuse it
    }
    await t.pool.end().catch(() => undefined);
    t.pool = createPool(t.db, 10);
  });

  it('statement_timeout hit: the run fails (exit 1) saying so, published scores unchanged, and resumes', async () => {
    const { child, runId: id } = await slowRun(2, { ...t.env, PGOPTIONS: '-c statement_timeout=700' });
    // Make the next chunk's COPY wait on a lock longer than the timeout.
    const locker = await t.pool.connect();
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE scoring."score_data_${id}" IN ACCESS EXCLUSIVE MODE`);
    const r = await child.result;
    await locker.query('ROLLBACK');
    locker.release();
    outputs.push(r);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/a statement ran longer than statement_timeout and was canceled/);
    const run = await t.pool.query('SELECT status, error FROM scoring.score_runs WHERE run_id = $1', [id]);
    expect(run.rows[0]).toMatchObject({ status: 'failed', error: expect.stringMatching(/statement_timeout/) });
    expect(await scores()).toEqual(baseline);
    await resumeAndCheck(id);
  });

  it('the server restarted mid-run: the chunk is retried and the run succeeds', async () => {
    // Tiny chunks keep the run going through the restart; more attempts give a loaded machine time to bring the server back.
    const { child, runId: id } = await slowRun(3, t.env, ['--chunk-size', '5', '--chunk-attempts', '7']);
    await server.restart();
    const r = await child.result;
    outputs.push(r);
    // The run's log lines say which connection failed how, should it fail.
    expect(
      r.stderr,
      r.stdout
        .split('\n')
        .filter((l) => /"level":(40|50)/.test(l))
        .join('\n'),
    ).toBe('');
    expect(r.code).toBe(0);
    expect(r.logs.some((l) => /retrying/.test(String(l.msg)))).toBe(true);
    expect(await scores()).toEqual(baseline);
    const run = await t.pool.query('SELECT status FROM scoring.score_runs WHERE run_id = $1', [id]);
    expect(run.rows[0]).toEqual({ status: 'succeeded' });
  });

  it('SIGKILL while recording the plan: the next look marks the run interrupted; resume re-plans and completes', async () => {
    const locker = await t.pool.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE scoring.score_chunks IN EXCLUSIVE MODE'); // reads pass, the plan's INSERT waits
    const child = startCli(['run'], t.env);
    const started = await waitForLog(child, (l) => /started/.test(String(l.msg)));
    await jobWaitsOnLock(t.pool, ['ledger']); // the plan's INSERT waits on the lock: the job is recording its plan
    child.kill('SIGKILL');
    await child.result;
    await locker.query('ROLLBACK');
    locker.release();
    expect(await scores()).toEqual(baseline);
    // Once the lock's grace is over (a live run whose connection dropped would be back by then).
    const listed = await waitUntil('runs to show the killed run interrupted', async () => {
      const first = JSON.parse((await cli(['runs', '--json'])).stdout)[0] as { status: string };
      return first.status === 'interrupted' ? first : undefined;
    });
    expect(listed).toMatchObject({ run_id: runId(started), status: 'interrupted', chunks_total: null });
    await resumeAndCheck(runId(started));
  });

  it('SIGKILL mid-chunk: the chunk in flight is rolled back; committed chunks and their ledger rows agree; resume completes', async () => {
    const { child, runId: id } = await slowRun(4);
    const locker = await t.pool.connect();
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE scoring."score_data_${id}" IN ACCESS EXCLUSIVE MODE`);
    await jobWaitsOnLock(t.pool, ['writer']); // the writer is inside a chunk transaction, waiting
    child.kill('SIGKILL');
    await child.result;
    await locker.query('ROLLBACK');
    locker.release();
    // A chunk's scores and its done mark commit in one transaction: there is no state in between.
    const agree = await t.pool.query<{ done: string; rows: string }>(
      `SELECT (SELECT coalesce(sum(rows_scored), 0) FROM scoring.score_chunks WHERE run_id = $1 AND status = 'done')::text done,
              (SELECT count(*) FROM scoring."score_data_${id}")::text "rows"`,
      [id],
    );
    expect(agree.rows[0]?.rows).toBe(agree.rows[0]?.done);
    expect(await scores()).toEqual(baseline);
    await resumeAndCheck(id);
  });

  it('SIGKILL during publish: readers keep the previous run; resume publishes', async () => {
    const locker = await t.pool.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE scoring.published_run IN SHARE MODE'); // moving the pointer waits; readers do not
    const before = await publishedSnapshot(t);
    const reader = startReader(t); // polls from before the run until after the resume has published
    const child = startCli(['run', '--chunk-size', '2000'], t.env);
    const started = await waitForLog(child, (l) => /started/.test(String(l.msg)));
    await waitForLog(child, (l) => typeof l.chunks_done === 'number' && l.chunks_done === l.chunks_total);
    await jobWaitsOnLock(t.pool, ['ledger']); // the publish waits on the lock, inside its transaction
    const during = await t.pool.query<{ run_id: string; n: number }>('SELECT run_id::text, count(*)::int n FROM scoring.customer_scores GROUP BY 1');
    expect(during.rows).toHaveLength(1);
    expect(during.rows[0]?.n).toBe(baseline.size);
    child.kill('SIGKILL');
    await child.result;
    await locker.query('ROLLBACK');
    locker.release();
    expect(await scores()).toEqual(baseline);
    await resumeAndCheck(runId(started));
    const run = await t.pool.query('SELECT status, published_at IS NOT NULL AS published FROM scoring.score_runs WHERE run_id = $1', [runId(started)]);
    expect(run.rows[0]).toEqual({ status: 'succeeded', published: true });
    const { bad, sequence } = judgePolls(await reader.stop(), [...before.runs, runId(started)], baseline.size);
    expect(bad).toEqual([]);
    expect(sequence).toEqual([...before.runs, runId(started)]);
  });

  it('no password or connection string in any output, ledger row or runs --json', async () => {
    const runs = await cli(['runs', '--json']);
    const shows = await Promise.all((JSON.parse(runs.stdout) as { run_id: string }[]).map((r) => cli(['runs', 'show', r.run_id, '--json'])));
    expect(shows.every((s) => s.code === 0)).toBe(true);
    const ledger = await t.pool.query<{ j: string }>(
      `SELECT row_to_json(r)::text j FROM scoring.score_runs r UNION ALL SELECT row_to_json(c)::text FROM scoring.score_chunks c`,
    );
    const everything = [...outputs.flatMap((o) => [o.stdout, o.stderr]), ...ledger.rows.map((r) => r.j)].join('\n');
    expect(outputs.length).toBeGreaterThan(10);
    expect(everything).not.toContain(password);
    expect(everything).not.toContain(encodeURIComponent(password));
    expect(everything).not.toMatch(/postgres(ql)?:\/\/[^\s"]*:[^\s"@]*@/);
  });
});
