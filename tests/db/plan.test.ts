import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/seed.js';
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

  for (const size of [1000, 1, 10_037, 20_000, 3333]) {
    it(`walking the key index and numbering the keys give the same balanced chunks (chunk size ${size})`, async () => {
      const client = await t.pool.connect();
      try {
        const byIndex = await planChunks(client, { table: 'customers', key: 'customer_id' }, size);
        const byWindow = await planChunks(client, { table: 'public.customers_v', key: 'customer_id' }, size);
        expect(byIndex).toEqual(byWindow);
        expect(byIndex.rows).toBe(10_037);
        expect(byIndex.chunks).toHaveLength(Math.ceil(10_037 / size));
        // Every row in exactly one chunk, every chunk but the last exactly `size` rows.
        const { rows } = await client.query<{ n: string }>(
          `SELECT count(*)::text n FROM customers c JOIN unnest($1::int8[], $2::int8[]) AS r(lo, hi) ON c.customer_id > r.lo AND c.customer_id <= r.hi GROUP BY r.lo ORDER BY r.lo`,
          [byIndex.chunks.map((c) => c.lo.toString()), byIndex.chunks.map((c) => c.hi.toString())],
        );
        expect(rows.map((r) => Number(r.n))).toEqual(byIndex.chunks.map((_, i) => (i < byIndex.chunks.length - 1 ? size : 10_037 - size * (byIndex.chunks.length - 1))));
      } finally {
        client.release();
      }
    });
  }

  it('an empty source plans no chunks', async () => {
    await t.pool.query('CREATE TABLE empty_src (customer_id bigint PRIMARY KEY)');
    const client = await t.pool.connect();
    try {
      expect(await planChunks(client, { table: 'empty_src', key: 'customer_id' }, 100)).toEqual({ chunks: [], rows: 0 });
    } finally {
      client.release();
    }
  });
});
