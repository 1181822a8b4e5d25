import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
/** Bytes per row: field count (2) + int8 key (4 + 8) + float4 score (4 + 4). */
const rowBytes = 22;

/**
 * Encodes (customer_id int8, score float4) rows in binary COPY format into one buffer.
 * `out` is reused between chunks when large enough: the hot path allocates nothing per row.
 */
export function encodeScores(keys: BigInt64Array, scores: Float32Array, rows: number, out?: Buffer): Buffer {
  const size = header.length + rows * rowBytes + 2;
  const buf = out && out.length >= size ? out : Buffer.allocUnsafe(Math.ceil(size * 1.25));
  header.copy(buf, 0);
  const keyView = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
  let p = header.length;
  for (let i = 0; i < rows; i++) {
    buf.writeInt16BE(2, p);
    buf.writeInt32BE(8, p + 2);
    // The key's two little-endian halves, written big-endian: no BigInt per row.
    buf.writeInt32BE(keyView.getInt32(i * 8 + 4, true), p + 6);
    buf.writeUInt32BE(keyView.getUint32(i * 8, true), p + 10);
    buf.writeInt32BE(4, p + 14);
    buf.writeFloatBE(scores[i] as number, p + 18);
    p += rowBytes;
  }
  buf.writeInt16BE(-1, p);
  return buf.subarray(0, size);
}

/** `COPY table (customer_id, score) FROM STDIN (FORMAT binary)` of an encoded buffer, through pipeline. */
export async function copyScores(client: pg.ClientBase, quotedTable: string, encoded: Buffer): Promise<void> {
  await pipeline(Readable.from([encoded]), client.query(copyFrom(`COPY ${quotedTable} (customer_id, score) FROM STDIN (FORMAT binary)`)));
}
