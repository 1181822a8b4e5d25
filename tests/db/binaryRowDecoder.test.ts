import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocateBatch, type ColumnBatch, type ColumnSpec } from '../../src/columns.js';
import { BinaryRowDecoder, type WireType } from '../../src/db/binaryRowDecoder.js';
import { readChunk, chunkCopySql, sourceWireTypes } from '../../src/db/copyReader.js';
import { seedCustomers } from '../../src/dev/seed.js';
import type { KeyType } from '../../src/keyColumn.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const specs: ColumnSpec[] = [
  { name: 'tenure_months', kind: 'float8' },
  { name: 'revenue_12m', kind: 'float8' },
  { name: 'email_open_rate', kind: 'float8' },
  { name: 'discount_share', kind: 'float8' },
  { name: 'segment', kind: 'category', categories: ['consumer', 'smb'] },
  { name: 'region', kind: 'category', categories: ['north', 'south', 'east', 'west', 'central'] },
  { name: 'has_app', kind: 'bool' },
];

/** The binary COPY bytes PostgreSQL itself sends, taken whole through pg-copy-streams. */
async function copyBytes(t: TestDatabase, sql: string): Promise<Buffer> {
  const client = await t.pool.connect();
  const parts: Buffer[] = [];
  try {
    await pipeline(client.query(copyTo(sql)), new Writable({ write: (c: Buffer, _e, done) => (parts.push(c), done()) }));
  } finally {
    client.release();
  }
  return Buffer.concat(parts);
}

function decode(bytes: Buffer, wire: WireType[], splits: number[], keyType: KeyType = 'int8'): ColumnBatch {
  const decoder = new BinaryRowDecoder(allocateBatch(specs, 16, keyType), wire); // small: grows mid-stream
  let from = 0;
  for (const to of [...splits, bytes.length]) {
    const part = Buffer.from(bytes.subarray(from, to)); // a buffer of its own, as a socket read would be
    decoder.feed(part, new DataView(part.buffer, part.byteOffset, part.byteLength), 0, part.length);
    from = to;
  }
  expect(decoder.ended).toBe(true);
  return decoder.batch;
}

function columnsOf(b: ColumnBatch): unknown[] {
  return b.columns.map((c) => {
    const n = Array.from(c.nulls.subarray(0, b.rows));
    if (c.kind === 'float8') return [n, Array.from(c.values.subarray(0, b.rows)).map((v, i) => (n[i] ? null : v))];
    if (c.kind === 'bool') return [n, Array.from(c.values.subarray(0, b.rows)).map((v, i) => (n[i] ? null : v))];
    return [n, Array.from(c.codes.subarray(0, b.rows)).map((v, i) => (n[i] ? null : v))];
  });
}

describe('BinaryRowDecoder on real binary COPY streams', () => {
  let t: TestDatabase;
  let wire: WireType[];
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    await seedCustomers(t.pool, { customers: 40, seed: 3, nullFraction: 0.2 });
    await t.pool.query(`UPDATE customers SET discount_share = 'NaN' WHERE customer_id = (SELECT min(customer_id) FROM customers)`);
    const c = await t.pool.connect();
    try {
      wire = await sourceWireTypes(c, { table: 'customers', key: 'customer_id' }, specs);
    } finally {
      c.release();
    }
  });
  afterAll(async () => t.drop());

  it('decodes what a plain SELECT reads, and gives the same batch however the stream is split (every byte)', async () => {
    const c = await t.pool.connect();
    let sql: string;
    try {
      sql = chunkCopySql({ table: 'customers', key: 'customer_id' }, specs, -1n, 2n ** 62n, wire);
    } finally {
      c.release();
    }
    expect(wire.slice(0, 2)).toEqual(['int4', 'numeric']); // read as stored, not cast by the server
    const bytes = await copyBytes(t, sql);
    const whole = decode(bytes, wire, []);
    expect(whole.rows).toBe(40);

    const { rows } = await t.pool.query<Record<string, unknown>>(
      `SELECT customer_id::text k, tenure_months::float8 a, revenue_12m::float8 b, email_open_rate::float8 c, discount_share::float8 d, segment, region, has_app
         FROM customers ORDER BY ctid`, // the order of a sequential scan, as the COPY returns them
    );
    expect(Array.from(whole.keys.subarray(0, 40), String)).toEqual(rows.map((r) => r.k));
    const cats = (list: string[], v: unknown) => (v === null ? null : list.indexOf(v as string));
    expect(columnsOf(whole)).toEqual([
      ...(['a', 'b', 'c', 'd'] as const).map((f) => [rows.map((r) => (r[f] === null ? 1 : 0)), rows.map((r) => (r[f] === null ? null : Number(r[f])))]),
      [rows.map((r) => (r.segment === null ? 1 : 0)), rows.map((r) => cats(['consumer', 'smb'], r.segment))],
      [rows.map((r) => (r.region === null ? 1 : 0)), rows.map((r) => cats(['north', 'south', 'east', 'west', 'central'], r.region))],
      [rows.map((r) => (r.has_app === null ? 1 : 0)), rows.map((r) => (r.has_app === null ? null : r.has_app ? 1 : 0))],
    ]);
    const reference = JSON.stringify(columnsOf(whole));
    for (let at = 1; at < bytes.length; at++) {
      const split = decode(bytes, wire, [at]);
      expect(split.rows).toBe(40);
      expect(JSON.stringify(columnsOf(split)), `split at byte ${at}`).toBe(reference);
    }
    const many = decode(
      bytes,
      wire,
      Array.from({ length: Math.floor(bytes.length / 7) }, (_, i) => (i + 1) * 7),
    );
    expect(JSON.stringify(columnsOf(many))).toBe(reference);
  });

  it('uuid and text keys: the key bytes of each row kept verbatim, however the stream is split and as the batch grows', async () => {
    await t.pool.query(
      `CREATE TABLE keyed AS SELECT md5(customer_id::text)::uuid AS u, repeat('é', (customer_id % 7)::int) || 'K-' || customer_id AS s, c.* FROM customers c`,
    );
    for (const [key, keyType] of [
      ['u', 'uuid'],
      ['s', 'text'],
    ] as const) {
      const bytes = await copyBytes(t, chunkCopySql({ table: 'keyed', key, keyType }, specs, null, null, wire));
      const { rows } = await t.pool.query<{ k: string }>(`SELECT ${key}::text k FROM keyed ORDER BY ${key}`);
      const keysOf = (b: ColumnBatch) => Array.from({ length: b.rows }, (_, i) => b.keyBytes?.text(Number(b.keys[i])));
      expect(keysOf(decode(bytes, wire, [], keyType))).toEqual(rows.map((r) => r.k));
      for (let at = 1; at < bytes.length; at += 3)
        expect(keysOf(decode(bytes, wire, [at], keyType)), `${keyType} split at byte ${at}`).toEqual(rows.map((r) => r.k));
    }
  });

  it('readChunk (the pg Submittable) leaves the connection usable after the COPY and after a COPY that fails', async () => {
    const c = await t.pool.connect();
    try {
      const sql = chunkCopySql({ table: 'customers', key: 'customer_id' }, specs, -1n, 2n ** 62n, wire);
      const batch = await readChunk(c, sql, allocateBatch(specs, 8), wire);
      expect(batch.rows).toBe(40);
      expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      await expect(readChunk(c, 'COPY (SELECT 1/0) TO STDOUT (FORMAT binary)', allocateBatch([], 8))).rejects.toMatchObject({ code: '22012' });
      expect((await c.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    } finally {
      c.release();
    }
  });
});
