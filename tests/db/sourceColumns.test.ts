import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ColumnSpec } from '../../src/columns.js';
import { checkSourceColumns } from '../../src/db/sourceColumns.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const hostile = 'x"; DROP TABLE customers; --';

const specs: ColumnSpec[] = [
  { name: 'tenure_months', kind: 'float8' },
  { name: 'revenue_12m', kind: 'float8' },
  { name: 'discount_share', kind: 'float8' },
  { name: 'segment', kind: 'category', categories: ['consumer', 'smb', 'enterprise'] },
  { name: 'is_subscriber', kind: 'bool' },
];

let t: TestDatabase;
const role = `sj_reader_${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  t = await createTestDatabase({ migrated: false });
  await t.pool.query(`
    CREATE TABLE customers (customer_id bigint PRIMARY KEY, tenure_months integer, revenue_12m numeric(12,2),
      discount_share double precision, segment text, is_subscriber boolean, "${hostile.replace(/"/g, '""')}" real);
    CREATE SCHEMA crm;
    CREATE TYPE crm.segment AS ENUM ('consumer', 'smb', 'enterprise');
    CREATE DOMAIN crm.label AS varchar(20);
    CREATE TABLE crm.accounts (account_id integer NOT NULL, tenure_months smallint, revenue_12m real,
      discount_share bigint, segment crm.segment, is_subscriber boolean);
    CREATE UNIQUE INDEX ON crm.accounts (account_id);
    CREATE TABLE crm.wrong (id numeric PRIMARY KEY, tenure_months text, revenue_12m integer, discount_share float8,
      segment integer, is_subscriber integer);
    CREATE TABLE crm.nounique (id int8, tenure_months int4, revenue_12m int4, discount_share int4, segment crm.label, is_subscriber bool);
    CREATE UNIQUE INDEX ON crm.nounique (id) WHERE id > 0;
    CREATE INDEX ON crm.nounique (id);
    CREATE VIEW crm.customer_view AS SELECT * FROM customers;
    CREATE TABLE "cust""; DROP TABLE customers; --" (customer_id int8 PRIMARY KEY, "${hostile.replace(/"/g, '""')}" float8);
  `);
});

afterAll(async () => {
  await t?.pool.query(`DROP OWNED BY ${role}; DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
  await t?.drop();
});

async function check(table: string, key: string, columns = specs, model?: string) {
  const client = await t.pool.connect();
  try {
    return await checkSourceColumns(client, { table, key }, columns, { modelName: model });
  } finally {
    client.release();
  }
}

describe('checkSourceColumns', () => {
  it('accepts a table with every column in a compatible type and a primary key', async () => {
    const c = await check('customers', 'customer_id');
    expect(c.problems).toEqual([]);
    expect(c.relation).toBe('public.customers');
    expect(c.relkind).toBe('table');
    expect(c.key).toEqual({ name: 'customer_id', type: 'bigint', keyType: 'int8', ok: true, unique: 'yes' });
    expect(c.columns.map((col) => [col.name, col.type, col.ok])).toEqual([
      ['tenure_months', 'integer', true],
      ['revenue_12m', 'numeric(12,2)', true],
      ['discount_share', 'double precision', true],
      ['segment', 'text', true],
      ['is_subscriber', 'boolean', true],
    ]);
  });

  it('resolves schema.table, accepts enums, real, smallint and a unique index as the key', async () => {
    const c = await check('crm.accounts', 'account_id');
    expect(c.problems).toEqual([]);
    expect(c.relation).toBe('crm.accounts');
    expect(c.key.unique).toBe('yes');
    expect(c.columns.find((col) => col.name === 'segment')?.type).toBe('crm.segment');
  });

  it('names each column whose type the model cannot read, and a key neither integer, uuid nor text', async () => {
    const c = await check('crm.wrong', 'id');
    expect(c.problems).toEqual([
      'key column id of crm.wrong is numeric, expected an integer (smallint, integer, bigint), uuid or text (text, varchar) key',
      'column tenure_months of crm.wrong is text, expected a number',
      'column segment of crm.wrong is integer, expected text or an enum (a category)',
      'column is_subscriber of crm.wrong is integer, expected boolean',
    ]);
    expect(c.columns.filter((col) => col.ok).map((col) => col.name)).toEqual(['revenue_12m', 'discount_share']);
  });

  it('says which columns are missing and which model needs them', async () => {
    const more: ColumnSpec[] = [...specs, { name: 'has_app', kind: 'bool' }];
    const c = await check('customers', 'id', more, 'customer-value');
    expect(c.problems).toEqual([
      'table customers has no key column id (manifest source.key)',
      'table customers has no column has_app (model customer-value needs it)',
    ]);
  });

  it('refuses a key without a unique index on exactly it (a partial unique index does not count)', async () => {
    const c = await check('crm.nounique', 'id');
    expect(c.key.unique).toBe('no');
    expect(c.problems).toEqual([
      'key column id of crm.nounique is not unique (no primary key or unique index on exactly that column); scores are one per customer',
    ]);
    // A domain over varchar is a category column.
    expect(c.columns.find((col) => col.name === 'segment')).toMatchObject({ type: 'crm.label', ok: true });
  });

  it('reads a view but cannot vouch for its key', async () => {
    const c = await check('crm.customer_view', 'customer_id');
    expect(c.relkind).toBe('view');
    expect(c.key.unique).toBe('unknown');
    expect(c.problems).toEqual([]);
    expect(c.notes).toEqual(['crm.customer_view is a view: whether customer_id is unique cannot be checked']);
  });

  it('reports a missing table, with the search_path when the name is not qualified', async () => {
    expect((await check('public.nothing', 'customer_id')).problems).toEqual(['source table public.nothing does not exist']);
    expect((await check('nothing', 'customer_id')).problems).toEqual(['source table nothing does not exist (looked in search_path: "$user", public)']);
    expect((await check('nowhere.customers', 'customer_id')).problems).toEqual(['source table nowhere.customers does not exist']);
    const client = await t.pool.connect();
    try {
      const named = await checkSourceColumns(client, { table: 'public.nothing', key: 'customer_id' }, specs, { manifestFile: '/m/manifest.json' });
      expect(named.problems).toEqual([
        'source table public.nothing does not exist; to score another table, set "source": {"table": …} in /m/manifest.json, or draft a manifest for your table with `scorejob model init DIR --table YOUR_TABLE`',
      ]);
    } finally {
      client.release();
    }
  });

  it('treats hostile table and column names as names', async () => {
    const c = await check(`cust"; DROP TABLE customers; --`, 'customer_id', [{ name: hostile, kind: 'float8' }]);
    expect(c.problems).toEqual([]);
    expect(c.columns[0]).toMatchObject({ name: hostile, type: 'double precision', ok: true });
    const onCustomers = await check('customers', 'customer_id', [{ name: hostile, kind: 'float8' }]);
    expect(onCustomers.columns[0]).toMatchObject({ type: 'real', ok: true });
    const { rows } = await t.pool.query(`SELECT to_regclass('public.customers') IS NOT NULL AS present`);
    expect(rows[0].present).toBe(true);
  });

  it('says when the role cannot read a column', async () => {
    await t.pool.query(`CREATE ROLE ${role}; GRANT SELECT (customer_id, tenure_months) ON customers TO ${role}`);
    const client = await t.pool.connect();
    try {
      await client.query(`SET ROLE ${role}`);
      const c = await checkSourceColumns(client, { table: 'customers', key: 'customer_id' }, specs.slice(0, 2));
      expect(c.problems).toEqual([`cannot read column revenue_12m of customers: ${role} has no SELECT privilege on it`]);
    } finally {
      await client.query('RESET ROLE');
      client.release();
    }
  });
});
