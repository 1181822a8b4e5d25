import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { planChunks } from '../../src/run/plan.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

describe('planChunks', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    await seedCustomers(t.pool, { customers: 10_037, seed: 17 });
    await t.pool.query('CREATE VIEW customers_v AS SELECT * FROM customers'); // no index: the window plan
  });
  afterAll(async () => t.drop());

  const plan = async (table: string, size: number) => {
    const client = await t.pool.connect();
    try {
      return await planChunks(client, { table, key: 'customer_id' }, size);
    } finally {
      client.release();
    }
  };

  /** Rows of `table` in each chunk, counted by a plain query; open ends (NULL) mean no bound. */
  const countIn = async (table: string, chunks: { lo: bigint | string | null; hi: bigint | string | null }[]) => {
    const { rows } = await t.pool.query<{ n: number }>(
      `SELECT (SELECT count(*)::int FROM ${table} c WHERE (r.lo IS NULL OR c.customer_id > r.lo) AND (r.hi IS NULL OR c.customer_id <= r.hi)) AS n
         FROM unnest($1::int8[], $2::int8[]) WITH ORDINALITY AS r(lo, hi, i) ORDER BY r.i`,
      [chunks.map((c) => c.lo?.toString() ?? null), chunks.map((c) => c.hi?.toString() ?? null)],
    );
    return rows.map((r) => r.n);
  };

  for (const size of [1000, 1, 10_037, 20_000, 3333]) {
    it(`walking the key index and numbering the keys give the same balanced chunks, open at both ends, each with its exact row count (chunk size ${size})`, async () => {
      const byIndex = await plan('customers', size);
      const byWindow = await plan('public.customers_v', size);
      expect(byIndex).toEqual(byWindow);
      expect(byIndex.rows).toBe(10_037);
      expect(byIndex.nullKeys).toBe(0);
      expect(byIndex.chunks).toHaveLength(Math.ceil(10_037 / size));
      expect(byIndex.chunks[0]?.lo).toBeNull();
      expect(byIndex.chunks.at(-1)?.hi).toBeNull();
      // Every row in exactly one chunk, every chunk but the last exactly `size` rows, and the plan says how many.
      const counts = await countIn('customers', byIndex.chunks);
      expect(counts).toEqual(byIndex.chunks.map((_, i) => (i < byIndex.chunks.length - 1 ? size : 10_037 - size * (byIndex.chunks.length - 1))));
      expect(byIndex.chunks.map((c) => c.rows)).toEqual(counts);
    });
  }

  it('a view whose key repeats across a boundary: the window plan still counts each chunk exactly', async () => {
    await t.pool.query(`CREATE VIEW customers_dup_v AS SELECT * FROM customers UNION ALL (SELECT * FROM customers ORDER BY customer_id LIMIT 3 OFFSET 998)`);
    const p = await plan('public.customers_dup_v', 1000);
    expect(p.rows).toBe(10_040);
    expect(p.chunks.map((c) => c.rows)).toEqual(await countIn('customers_dup_v', p.chunks));
  });

  it('counts the rows whose key is NULL (a table with a unique index and no primary key; a view)', async () => {
    await t.pool.query('CREATE TABLE customers_nk AS SELECT * FROM customers ORDER BY customer_id LIMIT 100');
    await t.pool.query('CREATE UNIQUE INDEX ON customers_nk (customer_id)');
    await t.pool.query(
      'UPDATE customers_nk SET customer_id = NULL WHERE customer_id IN (SELECT customer_id FROM customers_nk ORDER BY customer_id DESC LIMIT 7)',
    );
    await t.pool.query('CREATE VIEW customers_nk_v AS SELECT * FROM customers_nk');
    for (const table of ['customers_nk', 'public.customers_nk_v']) {
      const p = await plan(table, 10);
      expect(p.nullKeys).toBe(7);
      expect(p.rows).toBe(93);
    }
  });

  for (const [type, min, max] of [
    ['int2', '-32768', '32767'],
    ['int4', '-2147483648', '2147483647'],
    ['int8', '-9223372036854775808', '9223372036854775807'],
  ] as const) {
    it(`plans a ${type} key running from the type's minimum to its maximum`, async () => {
      await t.pool.query(`CREATE TABLE lim_${type} (customer_id ${type} PRIMARY KEY)`);
      await t.pool.query(`INSERT INTO lim_${type} SELECT $1::${type} + g FROM generate_series(0, 8) g UNION ALL SELECT $2::${type}`, [min, max]);
      await t.pool.query(`CREATE VIEW lim_${type}_v AS SELECT * FROM lim_${type}`);
      for (const size of [1, 3, 100]) {
        const byIndex = await plan(`lim_${type}`, size);
        expect(byIndex).toEqual(await plan(`public.lim_${type}_v`, size));
        expect(byIndex.rows).toBe(10);
        expect(byIndex.chunks.map((c) => c.rows)).toEqual(await countIn(`lim_${type}`, byIndex.chunks));
      }
    });
  }

  it('an empty source plans no chunks', async () => {
    await t.pool.query('CREATE TABLE empty_src (customer_id bigint PRIMARY KEY)');
    expect(await plan('empty_src', 100)).toEqual({ chunks: [], rows: 0, nullKeys: 0 });
  });
});
