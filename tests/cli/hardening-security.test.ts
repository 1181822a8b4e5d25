import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { startCli, waitForLog } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitUntil } from '../helpers/hold.js';
import { holdChunk } from '../helpers/holdChunk.js';
import { modelCopy } from '../helpers/run.js';

const hostileColumn = 'x"; DROP TABLE customers; --';
const hostileTable = "cust'; DROP TABLE customers; --";
const hostileSchema = 'sc"; DROP TABLE customers; --';

async function customersStillThere(t: TestDatabase): Promise<void> {
  const { rows } = await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM customers');
  expect(rows[0]?.n).toBe(400);
}

/** Identifiers from configuration or a manifest are names, never SQL. */
describe('hostile identifiers', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    await seedCustomers(t.pool, { customers: 400, seed: 12 });
    const table = `"${hostileTable.replaceAll('"', '""')}"`;
    await t.pool.query(`CREATE TABLE ${table} AS SELECT * FROM customers`);
    await t.pool.query(`ALTER TABLE ${table} ADD PRIMARY KEY (customer_id)`);
    await t.pool.query(`ALTER TABLE ${table} RENAME COLUMN tenure_months TO "${hostileColumn.replaceAll('"', '""')}"`);
  });
  afterAll(async () => t.drop());

  it('a source table and feature column with hostile names are read as names', async () => {
    expect((await runCliInProcess(['migrate'], t.env)).code).toBe(0);
    const dir = await modelCopy((m) => {
      m.source.table = hostileTable;
      m.features[0].column = hostileColumn;
    });
    const inspect = await runCliInProcess(['model', 'inspect', dir], t.env);
    expect(inspect.code).toBe(0);
    const r = await runCliInProcess(['run', '--model', dir], t.env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    await customersStillThere(t);
    const { rows } = await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.customer_scores');
    expect(rows[0]?.n).toBe(400);
  });

  it('a hostile --schema is a schema name: migrate, run, runs and resume work in it', async () => {
    const env = { ...t.env, SCOREJOB_SCHEMA: hostileSchema };
    expect((await runCliInProcess(['migrate'], env)).code).toBe(0);
    const r = await runCliInProcess(['run', '--chunk-size', '100'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    await customersStillThere(t);
    const quoted = `"${hostileSchema.replaceAll('"', '""')}"`;
    const { rows } = await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM ${quoted}.customer_scores`);
    expect(rows[0]?.n).toBe(400);
    const runs = await runCliInProcess(['runs', '--json'], env);
    expect(runs.code).toBe(0);
    expect(JSON.parse(runs.stdout)).toHaveLength(1);

    // A second run killed inside its third chunk (held there by a trigger in the hostile schema), then resumed.
    const hold = await holdChunk(t, 3, hostileSchema);
    let runId: string;
    try {
      const child = startCli(['run', '--chunk-size', '100'], env);
      const started = waitForLog(child, (l) => typeof l.run_id === 'string' && /started/.test(String(l.msg)));
      started.catch(() => undefined); // awaited below, once the job is held
      await hold.reached();
      runId = (await started).run_id as string;
      child.kill('SIGKILL');
      await child.result;
      await hold.endJobSessions();
    } finally {
      await hold.release();
    }
    // The killed run's lock has a grace (src/ledger/runLock.ts) before `runs` may call it interrupted.
    const item = await waitUntil('runs to show the killed run interrupted', async () => {
      const listed = await runCliInProcess(['runs', '--json'], env);
      expect(listed.code).toBe(0);
      const found = (JSON.parse(listed.stdout) as { run_id: string; status: string; resume_command: string }[]).find((x) => x.run_id === runId);
      return found?.status === 'interrupted' ? found : undefined;
    });
    expect(item).toMatchObject({
      status: 'interrupted',
      resume_command: `scorejob resume ${runId}`,
    });
    const resumed = await runCliInProcess(['resume', runId], env);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    await customersStillThere(t);
    const published = await t.pool.query<{ run_id: string; n: number }>(`SELECT run_id::text, count(*)::int n FROM ${quoted}.customer_scores GROUP BY 1`);
    expect(published.rows).toEqual([{ run_id: runId, n: 400 }]);
    const show = await runCliInProcess(['runs', 'show', runId, '--json'], env);
    expect(show.code).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({ run_id: runId, status: 'succeeded' });
    // The default schema is untouched by runs in the other one.
    const other = await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.score_runs');
    expect(other.rows[0]?.n).toBe(1);
  });
});
