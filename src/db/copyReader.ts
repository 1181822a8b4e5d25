import type pg from 'pg';
import type { ColumnBatch, ColumnSpec } from '../columns.js';
import { BinaryRowDecoder, castWire, type WireType } from './binaryRowDecoder.js';
import { CopyOutQuery } from './copyOut.js';
import { quoteIdent, quoteLiteral, quoteQualified } from './sql.js';
import { keySqlType, type KeyBound, type KeyType } from '../keyColumn.js';

export type { KeyBound, WireType };

/** The source a model reads: a table or view and its key. */
export interface SourceRef {
  /** `table` or `schema.table`. */
  table: string;
  key: string;
  /** How the key is read and stored (src/keyColumn.ts); absent: int8 (smallint, integer or bigint keys). */
  keyType?: KeyType | undefined;
}

/** A bound as a SQL literal of the key's type: int8 formatted from a bigint, anything else quoted by the client's literal escaping. */
export function keyLiteral(v: bigint | string, keyType: KeyType = 'int8'): string {
  if (typeof v === 'bigint') return `'${BigInt.asIntN(64, v).toString()}'::int8`;
  return `${quoteLiteral(v)}::${keySqlType[keyType]}`;
}

const wireSql: Record<WireType, string> = {
  int2: 'int2',
  int4: 'int4',
  int8: 'int8',
  float4: 'float4',
  float8: 'float8',
  numeric: 'numeric',
  bool: 'boolean',
  text: 'text',
};
/** Source type OIDs a float8 column is read as, natively. */
const numericOids = new Map<number, WireType>([
  [21, 'int2'],
  [23, 'int4'],
  [20, 'int8'],
  [700, 'float4'],
  [701, 'float8'],
  [1700, 'numeric'],
]);

/**
 * The wire type of each column, from the source's catalog types (a `LIMIT 0` query: its row description
 * names each column's type, views included). Numeric columns then travel as they are stored: the
 * server's numeric-to-float8 cast goes through text and costs it more than the whole COPY of the column.
 */
export async function sourceWireTypes(client: pg.ClientBase, source: SourceRef, specs: readonly ColumnSpec[]): Promise<WireType[]> {
  if (specs.length === 0) return [];
  const cols = specs.map((s) => quoteIdent(s.name)).join(', ');
  const { fields } = await client.query(`SELECT ${cols} FROM ${quoteQualified(source.table)} LIMIT 0`);
  return specs.map((spec, i) => (spec.kind === 'float8' ? (numericOids.get(fields[i]?.dataTypeID ?? 0) ?? 'float8') : castWire[spec.kind]));
}

/**
 * The SQL condition for keys in (lo, hi], `quotedKey` already quoted; a null bound is no bound (the first
 * chunk is open below, the last open above), and rows without a key are never in a range. int8 bounds
 * are written as int8 literals formatted from bigint (never from user text): compared with an int2 or
 * int4 key without overflow, and still by the key's index. uuid and text bounds are values the database
 * gave, quoted as literals of the key's type and compared in the key column's own collation (no COLLATE
 * clause), so the key's btree index serves the range.
 */
export function keyRangeCondition(quotedKey: string, lo: KeyBound, hi: KeyBound, keyType: KeyType = 'int8'): string {
  const parts: string[] = [];
  if (lo !== null) parts.push(`${quotedKey} > ${keyLiteral(lo, keyType)}`);
  if (hi !== null) parts.push(`${quotedKey} <= ${keyLiteral(hi, keyType)}`);
  return parts.length > 0 ? parts.join(' AND ') : `${quotedKey} IS NOT NULL`;
}

/**
 * `COPY (SELECT key, features... WHERE key > lo AND key <= hi) TO STDOUT (FORMAT binary)`; a null bound is no bound.
 * Every column is cast to its wire type: free when the column already has that type (the server drops
 * the cast), and a guarantee of what arrives if the source changed type meanwhile.
 * uuid and text keys are read in key order: their physical order is rarely the key's (a uuid is random), and
 * the chunk's rows then go into the score table's primary key in order, not scattered over its btree.
 * COPY takes no bind parameters: the bounds are values the planner produced (see keyRangeCondition)
 * and every identifier goes through quoteIdent (src/db/sql.ts) here, once.
 */
export function chunkCopySql(
  source: SourceRef,
  specs: readonly ColumnSpec[],
  lo: KeyBound,
  hi: KeyBound,
  wire: readonly WireType[] = specs.map((s) => castWire[s.kind]),
): string {
  const key = quoteIdent(source.key);
  const keyType = source.keyType ?? 'int8';
  const cols = specs.map((s, i) => `${quoteIdent(s.name)}::${wireSql[wire[i] ?? castWire[s.kind]]}`);
  return (
    `COPY (SELECT ${key}::${keySqlType[keyType]}${cols.length ? ', ' + cols.join(', ') : ''} FROM ${quoteQualified(source.table)} ` +
    `WHERE ${keyRangeCondition(key, lo, hi, keyType)}${keyType === 'int8' ? '' : ` ORDER BY ${key}`}) TO STDOUT (FORMAT binary)`
  );
}

/**
 * Streams one chunk with binary COPY and decodes it into `batch` (grown if the chunk is larger than planned).
 * `wire` must be what `sql` was built with.
 */
export function readChunk(client: pg.ClientBase, sql: string, batch: ColumnBatch, wire?: readonly WireType[]): Promise<ColumnBatch> {
  return new Promise((resolve, reject) => {
    client.query(new CopyOutQuery(sql, new BinaryRowDecoder(batch, wire), resolve, reject));
  });
}
