import type pg from 'pg';
import { keyRangeCondition, type KeyBound, type SourceRef } from '../db/copyReader.js';
import { keySqlType, type KeyType } from '../keyColumn.js';
import { quoteIdent, quoteQualified } from '../db/sql.js';
import type { PlannedChunk } from '../ledger/ledger.js';

/** A planned chunk with its row count, as the plan knows it. */
export type CountedChunk = PlannedChunk & { rows: number };

export interface Plan {
  /** Key ranges in key order; the first has no lower bound and the last no upper bound (null). */
  chunks: CountedChunk[];
  /** Rows with a key in the source (the sum of the chunks' rows). */
  rows: number;
  /** Rows whose key is NULL: no chunk holds them, so a run must refuse the source while there are any. */
  nullKeys: number;
}

/**
 * Splits the source into key ranges (lo, hi] of `chunkSize` rows each (the last one shorter), balanced
 * whatever the gaps in the key sequence: the boundaries are the keys at every chunkSize-th position.
 * The first chunk is open below and the last open above, so the plan never computes a bound outside the
 * key type's range (a key at -2^63) and a resume that reads the source afresh skips no key beyond the ends.
 * Each chunk carries its exact row count: run this in the transaction (snapshot) the chunks are read in.
 */
export async function planChunks(client: pg.ClientBase, source: SourceRef, chunkSize: number): Promise<Plan> {
  const key: KeyRef = { sql: quoteIdent(source.key), type: source.keyType ?? 'int8' };
  const table = quoteQualified(source.table);
  return (await keyIsIndexed(client, source)) ? planByIndex(client, key, table, chunkSize) : planByWindow(client, key, table, chunkSize);
}

/** The key column, quoted, and how it is read. */
interface KeyRef {
  sql: string;
  type: KeyType;
}

/**
 * The key's text in the query's results, and how a bound goes back to it: int8 keys as int8 (whatever
 * the integer type), uuid and text keys as their own text, cast back to the key's type.
 */
function keyText(key: KeyRef): string {
  return key.type === 'int8' ? `${key.sql}::int8::text` : `${key.sql}::text`;
}

function boundOfText(key: KeyRef, k: string): KeyBound {
  return key.type === 'int8' ? BigInt(k) : k;
}

/**
 * Whether a btree index leads with the key column (a table's primary key, usually), in the column's own
 * collation (the one every range and ORDER BY of the key uses). Views have none.
 */
async function keyIsIndexed(client: pg.ClientBase, source: SourceRef): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_index i
         JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree'
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = to_regclass($1) AND a.attname = $2 AND i.indpred IS NULL AND i.indcollation[0] = a.attcollation) AS ok`,
    [quoteQualified(source.table), source.key],
  );
  return rows[0]?.ok === true;
}

/**
 * With an index on the key: walk it, one boundary per query (`WHERE key > previous boundary ORDER BY key
 * OFFSET chunkSize - 1 LIMIT 1`). Each query reads chunkSize index entries and stops, so the whole plan
 * reads the index once, with no sort and no window: a few ms per chunk (a count plus a row_number() pass
 * took ~0.3 s per million rows). Every chunk but the last holds exactly chunkSize rows: the key is unique
 * (the start-up check refuses a table whose key is not).
 */
async function planByIndex(client: pg.ClientBase, key: KeyRef, table: string, chunkSize: number): Promise<Plan> {
  // int8 bounds travel as int8 parameters whatever the integer type: compared across integer types, still by the index.
  // uuid and text bounds as the key's own type, compared in the column's collation: the index's order (keyIsIndexed).
  const nulls = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${key.sql} IS NULL`);
  const nullKeys = Number(nulls.rows[0]?.n ?? 0);
  const chunks: CountedChunk[] = [];
  let prev: KeyBound = null;
  for (;;) {
    const where: string = prev === null ? `${key.sql} IS NOT NULL` : `${key.sql} > $2::${keySqlType[key.type]}`;
    const params: (string | number)[] = prev === null ? [chunkSize - 1] : [chunkSize - 1, prev.toString()];
    const found: pg.QueryResult<{ k: string }> = await client.query<{ k: string }>(
      `SELECT ${keyText(key)} AS k FROM ${table} WHERE ${where} ORDER BY ${key.sql} OFFSET $1 LIMIT 1`,
      params,
    );
    const hi: string | undefined = found.rows[0]?.k;
    if (hi === undefined) break;
    chunks.push({ chunkNo: chunks.length + 1, lo: prev, hi: boundOfText(key, hi), rows: chunkSize });
    prev = boundOfText(key, hi);
  }
  const rest = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${keyRangeCondition(key.sql, prev, null, key.type)}`);
  return finish(chunks, prev, Number(rest.rows[0]?.n ?? 0), nullKeys);
}

/**
 * Without an index (a view): one ordered pass numbering the keys, keeping every chunkSize-th. `count(*)`
 * over the same ordering counts the rows with a key up to each boundary (peers included), so a chunk's
 * count stays exact even where a view repeats a key across a boundary.
 */
async function planByWindow(client: pg.ClientBase, key: KeyRef, table: string, chunkSize: number): Promise<Plan> {
  const stats = await client.query<{ n: string; keyed: string }>(`SELECT count(*) AS n, count(${key.sql}) AS keyed FROM ${table}`);
  const keyed = Number(stats.rows[0]?.keyed ?? 0);
  const nullKeys = Number(stats.rows[0]?.n ?? 0) - keyed;
  if (keyed === 0) return { chunks: [], rows: 0, nullKeys };
  const bounds = await client.query<{ k: string; upto: string }>(
    `SELECT k::text AS k, upto FROM (
       SELECT ${keyText(key)} AS k, row_number() OVER w AS rn, count(*) OVER w AS upto FROM ${table} WHERE ${key.sql} IS NOT NULL WINDOW w AS (ORDER BY ${key.sql})) s
      WHERE rn % $1 = 0 ORDER BY rn`,
    [chunkSize],
  );
  const chunks: CountedChunk[] = [];
  let prev: KeyBound = null;
  let counted = 0;
  for (const b of bounds.rows) {
    const hi = boundOfText(key, b.k);
    if (prev !== null && hi === prev) continue; // a key repeated across the boundary: one chunk holds all its rows
    chunks.push({ chunkNo: chunks.length + 1, lo: prev, hi, rows: Number(b.upto) - counted });
    counted = Number(b.upto);
    prev = hi;
  }
  return finish(chunks, prev, keyed - counted, nullKeys);
}

/** Adds the rows past the last boundary as a last chunk, or opens the last chunk above if there are none. */
function finish(chunks: CountedChunk[], prev: KeyBound, tail: number, nullKeys: number): Plan {
  if (tail > 0) chunks.push({ chunkNo: chunks.length + 1, lo: prev, hi: null, rows: tail });
  else if (chunks.length > 0) (chunks.at(-1) as CountedChunk).hi = null;
  return { chunks, rows: chunks.reduce((n, c) => n + c.rows, 0), nullKeys };
}

/**
 * The rows each chunk holds now (in the caller's snapshot), for chunks planned in an earlier snapshot: a
 * resumed run, or a run whose snapshot was lost, reads its unfinished chunks as of its new snapshot.
 * Bounded chunks are counted in one statement (a range count per chunk, by the index when there is one).
 */
export async function countChunkRows(client: pg.ClientBase, source: SourceRef, chunks: readonly PlannedChunk[]): Promise<CountedChunk[]> {
  const key = quoteIdent(source.key);
  const keyType = source.keyType ?? 'int8';
  const sqlType = keySqlType[keyType];
  const table = quoteQualified(source.table);
  const counts = new Map<number, number>();
  const bounded = chunks.filter((c) => c.lo !== null && c.hi !== null);
  if (bounded.length > 0) {
    const { rows } = await client.query<{ n: number; rows: string }>(
      `SELECT r.n, (SELECT count(*) FROM ${table} WHERE ${key} > r.lo AND ${key} <= r.hi) AS rows
         FROM unnest($1::int[], $2::${sqlType}[], $3::${sqlType}[]) AS r(n, lo, hi)`,
      [bounded.map((c) => c.chunkNo), bounded.map((c) => String(c.lo)), bounded.map((c) => String(c.hi))],
    );
    for (const r of rows) counts.set(r.n, Number(r.rows));
  }
  for (const c of chunks.filter((c) => c.lo === null || c.hi === null)) {
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${keyRangeCondition(key, c.lo, c.hi, keyType)}`);
    counts.set(c.chunkNo, Number(rows[0]?.n ?? 0));
  }
  return chunks.map((c) => ({ ...c, rows: counts.get(c.chunkNo) ?? 0 }));
}

/**
 * The tables of the source (itself, or its partitions) rewritten since the caller's snapshot was taken:
 * their file as of the snapshot (pg_class read in it) is not their file now (the relation cache). A
 * rewrite (ALTER TABLE … TYPE, VACUUM FULL, CLUSTER, TRUNCATE) is not MVCC-safe: an older snapshot sees
 * the new file empty, so a plan or count made in it would agree with reads that miss every row. Views
 * are not looked through (their rewritten tables show as short chunks only when the rewrite comes later).
 */
export async function rewrittenSinceSnapshot(client: pg.ClientBase, source: SourceRef): Promise<string[]> {
  const { rows } = await client.query<{ rel: string }>(
    `SELECT c.oid::regclass::text AS rel FROM pg_catalog.pg_class c
      WHERE c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass($1)) UNION ALL SELECT pg_catalog.to_regclass($1))
        AND c.relkind IN ('r', 'm') AND c.relfilenode <> pg_catalog.pg_relation_filenode(c.oid)`,
    [quoteQualified(source.table)],
  );
  return rows.map((r) => r.rel);
}
