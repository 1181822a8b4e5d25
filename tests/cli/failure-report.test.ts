import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { startCli, waitForLog } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runInProcess } from '../helpers/run.js';
import { publishedSnapshot } from '../helpers/state.js';

/** Polls until `query` returns a row; returns its first column. */
async function waitForRow<T>(client: pg.Client, query: string, params: unknown[] = [], timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query(query, params);
    if (rows[0]) return Object.values(rows[0])[0] as T;
    if (Date.now() > until) throw new Error(`timed out waiting for: ${query}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The backend of one of the job's connections while it waits for a lock the test holds. */
const waitingBackend = (app: string) =>
  `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = '${app}' AND wait_event_type = 'Lock'`;

/**
 * Issue 11 item 12 (a, b, c): the ledger names the stage a run failed in; the failures of a resumed
 * run stay on it; a resume's summary says what this invocation scored.
 */
describe('what the ledger says about a failure', () => {
  let t: TestDatabase;
  let admin: pg.Client;
  const customers = 200;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers, seed: 21 });
    await runInProcess(t, { chunkSize: 100 });
    admin = new pg.Client({ connectionString: t.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin.end();
    await t.drop();
  });

  it('a connection lost during the publish step: the run fails naming the stage; its resume scores 0 rows and says so; runs show keeps the failure', async () => {
    const before = await publishedSnapshot(t);
    // Hold the publish: moving the published_run pointer needs a lock that SHARE conflicts with (and nothing before publish does).
    const holder = new pg.Client({ connectionString: t.url });
    await holder.connect();
    let runId: string;
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE scoring.published_run IN SHARE MODE');
      const child = startCli(['run', '--chunk-size', '100'], t.env);
      runId = String((await waitForLog(child, (l) => typeof l.run_id === 'string')).run_id);
      const pid = await waitForRow<number>(admin, waitingBackend('scorejob ledger'));
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await holder.query('ROLLBACK');
      const r = await child.result;
      expect(r.stderr).toMatch(
        new RegExp(`^scorejob: run ${runId} failed: connection to \\S+ lost .* \\(during publish\\); resume it with \`scorejob resume ${runId}\``),
      );
      expect(r.code).toBe(1);
    } finally {
      await holder.end();
    }
    const row = (await t.pool.query(`SELECT status, error, error_kind, rows_scored::int FROM scoring.score_runs WHERE run_id = $1`, [runId])).rows[0];
    expect(row).toMatchObject({
      status: 'failed',
      error_kind: 'database',
      rows_scored: customers,
      error: expect.stringMatching(/^connection to \S+ lost .* \(during publish\)$/),
    });
    expect(await publishedSnapshot(t)).toEqual(before);

    // (c) The resume scores nothing (every chunk was done) and says so: this invocation's rows and rate, and the run's total.
    const resumed = await runCliInProcess(['resume', runId], t.env);
    expect(resumed.code).toBe(0);
    const summary = resumed.logs.at(-1)!;
    expect(summary).toMatchObject({ run_id: runId, status: 'succeeded', rows_scored: customers, rows_scored_now: 0, rows_rejected_now: 0, rows_per_second: 0 });
    expect(summary.msg).toMatch(new RegExp(`^run ${runId} succeeded: scored 0 customers now \\(${customers} in all, 0 rejected\\) in \\d+\\.\\d s, 0 rows/s`));
    expect((await publishedSnapshot(t)).runs).toEqual([runId]);

    // (b) The failure before the resume is kept, with its time, and shown.
    const show = await runCliInProcess(['runs', 'show', runId], t.env);
    expect(show.stdout).toMatch(/resumed 1×/);
    expect(show.stdout).toMatch(
      /Failures before it succeeded \(oldest first\):\n {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC {2}failed \(database\): connection to \S+ lost .* \(during publish\)\n/,
    );
    const json = JSON.parse((await runCliInProcess(['runs', 'show', runId, '--json'], t.env)).stdout) as {
      failures: { at: string; status: string; kind: string; error: string }[];
    };
    expect(json.failures).toEqual([
      { at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), status: 'failed', kind: 'database', error: expect.stringMatching(/\(during publish\)$/) },
    ]);
  });

  it('a connection lost in a chunk, without retries: the ledger names the chunk; two failures and two resumes are all kept', async () => {
    // Hold the commit of chunk 2 (of 2): a trigger on its "done" mark waits for an advisory lock the test holds.
    await t.pool.query(`CREATE FUNCTION public.hold_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.status = 'done' AND NEW.chunk_no = 2 THEN PERFORM pg_advisory_xact_lock(4242); END IF; RETURN NEW; END $$`);
    await t.pool.query(`CREATE TRIGGER hold_chunk BEFORE UPDATE ON scoring.score_chunks FOR EACH ROW EXECUTE FUNCTION public.hold_chunk()`);
    const holdAndKill = async (args: string[]) => {
      await admin.query('SELECT pg_advisory_lock(4242)');
      try {
        const child = startCli(args, t.env);
        const pid = await waitForRow<number>(admin, waitingBackend('scorejob writer'));
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        await admin.query('SELECT pg_advisory_unlock(4242)');
        return await child.result;
      } finally {
        await admin.query('SELECT pg_advisory_unlock_all()');
      }
    };
    let runId: string;
    try {
      const r = await holdAndKill(['run', '--chunk-size', '100', '--chunk-attempts', '1']);
      expect(r.code).toBe(1);
      runId = String(r.logs.find((l) => typeof l.run_id === 'string')?.run_id);
      expect(r.stderr).toMatch(/failed: connection to \S+ lost .* \(during chunk 2\); resume it with/);
      // The resume fails the same way (chunk 2 again), then a resume succeeds.
      const again = await holdAndKill(['resume', runId]);
      expect(again.code).toBe(1);
    } finally {
      await t.pool.query('DROP TRIGGER hold_chunk ON scoring.score_chunks');
      await t.pool.query('DROP FUNCTION public.hold_chunk()');
    }
    const done = await runCliInProcess(['resume', runId], t.env);
    expect(done.code).toBe(0);
    expect(done.logs.at(-1)).toMatchObject({ rows_scored: customers, rows_scored_now: 100 });
    const json = JSON.parse((await runCliInProcess(['runs', 'show', runId, '--json'], t.env)).stdout) as {
      resumes: number;
      failures: { status: string; error: string }[];
    };
    expect(json.resumes).toBe(2);
    expect(json.failures.map((f) => f.error)).toEqual([
      expect.stringMatching(/lost .* \(during chunk 2\)$/),
      expect.stringMatching(/lost .* \(during chunk 2\)$/),
    ]);
  });
});
