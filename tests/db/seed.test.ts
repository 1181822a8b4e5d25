import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { customerColumns, generateCustomers } from '../../src/dev/synthetic.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/** A digest of the whole table, in key order: equal digests mean equal content. */
async function digest(t: TestDatabase, table: string): Promise<string> {
  const { rows } = await t.pool.query<{ md5: string }>(`SELECT md5(string_agg(c::text, '|' ORDER BY c.customer_id)) AS md5 FROM ${table} c`);
  return rows[0]!.md5;
}

describe('seedCustomers', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
  });
  afterAll(async () => t.drop());

  it('creates the customers table with the synthetic columns and types, keyed by customer_id', async () => {
    const result = await seedCustomers(t.pool, { customers: 20_000, seed: 3 });
    expect(result).toMatchObject({ table: 'customers', rows: 20_000 });
    const { rows: columns } = await t.pool.query<{ name: string; type: string }>(
      `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
        WHERE attrelid = 'public.customers'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    );
    expect(columns).toEqual(customerColumns.map((c) => ({ name: c.name, type: c.type })));
    const { rows: key } = await t.pool.query<{ def: string }>(
      `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'public.customers'::regclass AND contype = 'p'`,
    );
    expect(key).toEqual([{ def: 'PRIMARY KEY (customer_id)' }]);
    const { rows: count } = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM customers');
    expect(Number(count[0]!.n)).toBe(20_000);
    // ANALYZE ran: the planner has statistics for every column.
    const { rows: stats } = await t.pool.query<{ attname: string }>(
      `SELECT attname FROM pg_stats WHERE schemaname = 'public' AND tablename = 'customers' ORDER BY attname`,
    );
    expect(stats.map((s) => s.attname)).toEqual(customerColumns.map((c) => c.name).sort());
  });

  it('leaves gaps between keys', async () => {
    const { rows } = await t.pool.query<{ n: string; lo: string; hi: string; max_gap: number }>(
      `SELECT count(*) AS n, min(customer_id) AS lo, max(customer_id) AS hi,
              max(gap)::int AS max_gap FROM (SELECT customer_id, customer_id - lag(customer_id) OVER (ORDER BY customer_id) AS gap FROM customers) g`,
    );
    const { n, lo, hi, max_gap } = rows[0]!;
    expect(Number(hi) - Number(lo) + 1).toBeGreaterThan(3 * Number(n));
    expect(max_gap).toBe(7);
  });

  it('stores exactly the rows generateCustomers yields', async () => {
    const expected = [...generateCustomers({ count: 20_000, seed: 3, nullFraction: 0.02 })].filter((_, i) => i % 997 === 0);
    const { rows } = await t.pool.query(
      `SELECT customer_id::float8 AS customer_id, tenure_months, orders_12m, revenue_12m::float8 AS revenue_12m,
              avg_order_value::float8 AS avg_order_value, days_since_last_order, support_tickets_12m, discount_share,
              returns_12m, web_sessions_30d, email_open_rate, segment, region, channel, is_subscriber, has_app
         FROM customers WHERE customer_id = ANY($1::bigint[]) ORDER BY customer_id`,
      [expected.map((r) => r.customer_id)],
    );
    expect(rows).toEqual(expected);
  });

  it('puts NULLs in the nullable columns at about the requested fraction', async () => {
    await seedCustomers(t.pool, { customers: 30_000, seed: 4, nullFraction: 0.25, table: 'public.nullable_customers' });
    const nullable = customerColumns.filter((c) => c.nullable).map((c) => c.name);
    const required = customerColumns.filter((c) => !c.nullable).map((c) => c.name);
    const fractions = await t.pool.query<Record<string, number>>(
      `SELECT ${customerColumns.map((c) => `avg((${c.name} IS NULL)::int)::float8 AS ${c.name}`).join(', ')} FROM public.nullable_customers`,
    );
    const row = fractions.rows[0]!;
    for (const name of nullable) expect(Math.abs(row[name]! - 0.25), name).toBeLessThan(0.015);
    for (const name of required) expect(row[name], name).toBe(0);
  });

  it('gives the same table for the same seed, another for another seed', async () => {
    await seedCustomers(t.pool, { customers: 5_000, seed: 77, table: 'again' });
    const first = await digest(t, 'again');
    await seedCustomers(t.pool, { customers: 5_000, seed: 77, table: 'again', replace: true });
    expect(await digest(t, 'again')).toBe(first);
    await seedCustomers(t.pool, { customers: 5_000, seed: 78, table: 'again', replace: true });
    expect(await digest(t, 'again')).not.toBe(first);
  });

  it('seeds into a schema-qualified table whose names need quoting', async () => {
    await t.pool.query('CREATE SCHEMA "Source Data"');
    const result = await seedCustomers(t.pool, { customers: 100, table: 'Source Data.My.Customers' });
    expect(result.rows).toBe(100);
    const { rows } = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM "Source Data"."My.Customers"');
    expect(Number(rows[0]!.n)).toBe(100);
  });

  it('accepts zero customers', async () => {
    await seedCustomers(t.pool, { customers: 0, table: 'empty_customers' });
    const { rows } = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM empty_customers');
    expect(Number(rows[0]!.n)).toBe(0);
  });

  it('rejects bad options with a usage error naming the flag, before touching the table', async () => {
    const before = await digest(t, 'customers');
    await expect(seedCustomers(t.pool, { customers: -1 })).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('--customers') });
    await expect(seedCustomers(t.pool, { customers: 1.5 })).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('--customers') });
    await expect(seedCustomers(t.pool, { customers: 10, nullFraction: 1.5 })).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringContaining('--null-fraction'),
    });
    await expect(seedCustomers(t.pool, { customers: 10, seed: -3 })).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('--seed') });
    expect(await digest(t, 'customers')).toBe(before);
  });

  it('never drops or changes a table it did not create, even with replace: exit 2, one line, the table untouched', async () => {
    await t.pool.query(`CREATE TABLE crm_customers (customer_id bigint PRIMARY KEY, name text, vip boolean)`);
    await t.pool.query(`INSERT INTO crm_customers SELECT g, 'customer ' || g, g % 7 = 0 FROM generate_series(1, 1000) g`);
    const before = await digest(t, 'crm_customers');
    for (const replace of [false, true]) {
      const err = await seedCustomers(t.pool, { customers: 100, table: 'crm_customers', replace }).catch((e: unknown) => e);
      expect(err).toMatchObject({ exitCode: 2 });
      const message = (err as Error).message;
      expect(message.split('\n')).toHaveLength(1);
      expect(message).toMatch(/^table crm_customers in database \S+@\S+:\d+\/sj_test_\w+ was not created by scorejob seed/);
      expect(message).not.toMatch(/--replace/);
    }
    expect(await digest(t, 'crm_customers')).toBe(before);
    const { rows } = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM crm_customers');
    expect(Number(rows[0]!.n)).toBe(1000);
  });

  it('a view of the same name is not its table either', async () => {
    await t.pool.query(`CREATE VIEW crm_view AS SELECT 1::bigint AS customer_id`);
    await expect(seedCustomers(t.pool, { customers: 10, table: 'crm_view', replace: true })).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(/^view crm_view in database \S+ was not created by scorejob seed/),
    });
    const { rows } = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM crm_view');
    expect(Number(rows[0]!.n)).toBe(1);
  });

  it('refuses to replace its own table unless told to (--replace), and replaces it when told', async () => {
    await seedCustomers(t.pool, { customers: 300, seed: 5, table: 'own' });
    const first = await digest(t, 'own');
    await expect(seedCustomers(t.pool, { customers: 50, seed: 6, table: 'own' })).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(
        /^table own in database \S+ already holds customers seeded by scorejob seed \(300 rows\): pass --replace to replace them$/,
      ),
    });
    expect(await digest(t, 'own')).toBe(first);
    // The advice, followed.
    const r = await seedCustomers(t.pool, { customers: 50, seed: 6, table: 'own', replace: true });
    expect(r.rows).toBe(50);
    const { rows } = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM own');
    expect(Number(rows[0]!.n)).toBe(50);
  });
});
