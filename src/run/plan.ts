import type pg from 'pg';
import { quoteQualified, type SourceRef } from '../db/copyReader.js';
import type { PlannedChunk } from './ledger.js';

export interface Plan {
  chunks: PlannedChunk[];
  /** Rows in the source at planning time. */
  rows: number;
}

/**
 * Splits the source into key ranges (lo, hi] of about `chunkSize` rows each, balanced whatever the
 * gaps in the key sequence: the boundaries are the keys at every chunkSize-th position.
 * One index-ordered pass over the key column; nothing else is read.
 */
export async function planChunks(client: pg.ClientBase, source: SourceRef, chunkSize: number): Promise<Plan> {
  const key = client.escapeIdentifier(source.key);
  const table = quoteQualified(client, source.table);
  const stats = await client.query<{ n: string; lo: string | null; hi: string | null }>(
    `SELECT count(*) AS n, min(${key})::int8::text AS lo, max(${key})::int8::text AS hi FROM ${table} WHERE ${key} IS NOT NULL`,
  );
  const { n, lo, hi } = stats.rows[0] as { n: string; lo: string | null; hi: string | null };
  const rows = Number(n);
  if (rows === 0 || lo === null || hi === null) return { chunks: [], rows: 0 };
  const bounds = await client.query<{ k: string }>(
    `SELECT k::text AS k FROM (SELECT ${key}::int8 AS k, row_number() OVER (ORDER BY ${key}) AS rn FROM ${table} WHERE ${key} IS NOT NULL) s
      WHERE rn % $1 = 0 ORDER BY rn`,
    [chunkSize],
  );
  const his = bounds.rows.map((r) => BigInt(r.k));
  const max = BigInt(hi);
  if (his.length === 0 || (his.at(-1) as bigint) < max) his.push(max);
  const chunks: PlannedChunk[] = [];
  let prev = BigInt(lo) - 1n;
  for (const h of his) {
    chunks.push({ chunkNo: chunks.length + 1, lo: prev, hi: h });
    prev = h;
  }
  return { chunks, rows };
}
