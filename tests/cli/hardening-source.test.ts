import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defaults } from '../../src/config.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, runInProcess } from '../helpers/run.js';
import { expectRefusedUnchanged, ledgerState, type LedgerState } from '../helpers/state.js';

/** README "What can go wrong": the source table and its columns. Each case: exit 2, one line, nothing written. */
describe('what can go wrong: the source', () => {
  let t: TestDatabase;
  let before: LedgerState;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 500, seed: 8 });
    await runInProcess(t, { chunkSize: defaults.chunkSize });
  });
  beforeEach(async () => {
    before = await ledgerState(t);
  });
  afterAll(async () => t.drop());

  const run = async (edit?: (m: Record<string, any>) => void) => runCliInProcess(['run', ...(edit ? ['--model', await modelCopy(edit)] : [])], t.env);

  it('source table missing', async () => {
    await expectRefusedUnchanged(t, before, await run((m) => (m.source.table = 'clients')), /source table clients does not exist/);
  });

  it('key column missing', async () => {
    await expectRefusedUnchanged(t, before, await run((m) => (m.source.key = 'client_id')), /has no key column client_id/);
  });

  it('key column not unique', async () => {
    await t.pool.query('CREATE TABLE customers_dup AS SELECT * FROM customers');
    await expectRefusedUnchanged(t, before, await run((m) => (m.source.table = 'customers_dup')), /key column customer_id of customers_dup is not unique/);
  });

  it('key column neither an integer, a uuid nor text', async () => {
    await t.pool.query('CREATE TABLE customers_numkey AS SELECT customer_id::numeric AS customer_id, tenure_months FROM customers');
    await t.pool.query('ALTER TABLE customers_numkey ADD PRIMARY KEY (customer_id)');
    await expectRefusedUnchanged(
      t,
      before,
      await run((m) => (m.source.table = 'customers_numkey')),
      /key column customer_id of customers_numkey is numeric, expected an integer \(smallint, integer, bigint\), uuid or text/,
    );
  });

  it('a feature column renamed upstream', async () => {
    await t.pool.query('ALTER TABLE customers RENAME COLUMN orders_12m TO orders_last_year');
    try {
      await expectRefusedUnchanged(t, before, await runCliInProcess(['run'], t.env), /table customers has no column orders_12m/);
    } finally {
      await t.pool.query('ALTER TABLE customers RENAME COLUMN orders_last_year TO orders_12m');
    }
  });

  it('a feature column of the wrong type (text for a number, text for a boolean)', async () => {
    await t.pool.query(`ALTER TABLE customers ALTER COLUMN revenue_12m TYPE text, ALTER COLUMN has_app TYPE text`);
    try {
      const r = await runCliInProcess(['run'], t.env);
      await expectRefusedUnchanged(t, before, r, /column revenue_12m of customers is text, expected a number \(and 1 more problem/);
      const inspect = await runCliInProcess(['model', 'inspect'], t.env);
      expect(inspect.code).toBe(2);
      expect(inspect.stdout).toMatch(/has_app/);
    } finally {
      await t.pool.query(
        `ALTER TABLE customers ALTER COLUMN revenue_12m TYPE numeric(12,2) USING revenue_12m::numeric, ALTER COLUMN has_app TYPE boolean USING has_app::boolean`,
      );
    }
  });

  it('rows with a NULL key (a unique index but no primary key, or a view over it): refused before the run, naming the table, the key and the count; model inspect says so; giving them keys, as advised, scores every row', async () => {
    await t.pool.query('CREATE TABLE customers_nk AS SELECT * FROM customers');
    await t.pool.query('CREATE UNIQUE INDEX ON customers_nk (customer_id)');
    await t.pool.query(
      `INSERT INTO customers_nk SELECT (jsonb_populate_record(NULL::customers_nk, to_jsonb(c) || '{"customer_id": null}'::jsonb)).* FROM customers c ORDER BY customer_id LIMIT 7`,
    );
    await t.pool.query('CREATE VIEW customers_nk_v AS SELECT * FROM customers_nk');
    const message = (table: string) =>
      new RegExp(
        `^scorejob: key column customer_id of ${table} has 7 NULL values: a row without a key can be neither scored nor rejected; give those rows a key or delete them`,
      );
    for (const table of ['customers_nk', 'public.customers_nk_v']) {
      const model = await modelCopy((m) => (m.source.table = table));
      await expectRefusedUnchanged(t, before, await runCliInProcess(['run', '--model', model], t.env), message(table));
      const inspect = await runCliInProcess(['model', 'inspect', model], t.env);
      expect(inspect.code).toBe(2);
      expect(inspect.stdout).toMatch(new RegExp(`problem: key column customer_id of ${table} has 7 NULL values`));
    }
    // The advice, followed: give them keys.
    await t.pool.query(
      `UPDATE customers_nk c SET customer_id = 1000000000 + n.rn FROM (SELECT ctid, row_number() OVER () rn FROM customers_nk WHERE customer_id IS NULL) n WHERE c.ctid = n.ctid`,
    );
    const r = await run((m) => (m.source.table = 'customers_nk'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await ledgerState(t)).publishedRows).toBe(507);
  });

  it('a view as the source works (its key uniqueness cannot be checked: noted, not refused)', async () => {
    await t.pool.query('CREATE VIEW customers_v AS SELECT * FROM customers WHERE tenure_months >= 0');
    const r = await run((m) => (m.source.table = 'public.customers_v'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const after = await ledgerState(t);
    expect(after.publishedRows).toBe(500);
  });

  it('values far outside the training range are scored, not rejected', async () => {
    await t.pool.query(`UPDATE customers SET revenue_12m = 99999999 WHERE customer_id = (SELECT min(customer_id) FROM customers)`);
    const r = await runCliInProcess(['run'], t.env);
    expect(r.code).toBe(0);
    // Every log line of a run carries its run id (cron's log shippers group by it).
    expect(r.logs.length).toBeGreaterThan(3);
    expect(r.logs.filter((l) => typeof l.run_id !== 'string')).toEqual([]);
    const summary = r.logs.at(-1) as { rows_scored: number; rows_rejected: number };
    expect(summary.rows_scored).toBe(500);
    expect(summary.rows_rejected).toBe(0);
  });
});
