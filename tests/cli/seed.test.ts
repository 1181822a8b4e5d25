import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const digest = async (t: TestDatabase, table: string) =>
  (await t.pool.query<{ md5: string; n: string }>(`SELECT md5(string_agg(c::text, '|' ORDER BY c.customer_id)) AS md5, count(*) AS n FROM ${table} c`))
    .rows[0]!;

/** `scorejob seed` on a database that already has a source table: no command drops or changes a table it did not create. */
describe('scorejob seed never replaces a table it did not create', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await t.pool.query(`CREATE TABLE customers (customer_id bigint PRIMARY KEY, name text NOT NULL, vip boolean NOT NULL)`);
    await t.pool.query(`INSERT INTO customers SELECT g, 'customer ' || g, g % 10 = 0 FROM generate_series(1, 1000) g`);
  });
  afterAll(async () => t?.drop());

  it('refuses a real customers table (exit 2, one line naming it) and leaves its 1,000 rows as they were', async () => {
    const before = await digest(t, 'customers');
    for (const args of [
      ['seed', '--customers', '100'],
      ['seed', '--customers', '100', '--replace'],
    ]) {
      const r = await runCliInProcess(args, t.env);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^scorejob: table customers in database \S+\/sj_test_\w+ was not created by scorejob seed: .* --table /);
    }
    expect(await digest(t, 'customers')).toEqual(before);
    expect(before.n).toBe('1000');
  });

  it('its own table: refused without --replace (exit 2, saying so), replaced with it', async () => {
    const first = await runCliInProcess(['seed', '--customers', '200', '--table', 'synthetic_customers'], t.env);
    expect(first.code, first.stderr).toBe(0);
    const seeded = await digest(t, 'synthetic_customers');
    expect(seeded.n).toBe('200');
    const again = await runCliInProcess(['seed', '--customers', '50', '--table', 'synthetic_customers'], t.env);
    expect(again.code).toBe(2);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(
      /table synthetic_customers in database \S+ already holds customers seeded by scorejob seed \(200 rows\): pass --replace to replace them/,
    );
    expect(await digest(t, 'synthetic_customers')).toEqual(seeded);
    // The advice, followed as written.
    const replaced = await runCliInProcess(['seed', '--customers', '50', '--table', 'synthetic_customers', '--replace'], t.env);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect((await digest(t, 'synthetic_customers')).n).toBe('50');
  });
});
