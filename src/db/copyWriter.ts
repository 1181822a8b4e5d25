import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { KeyBytes } from '../keyColumn.js';

/** The binary COPY header: signature, flags, header extension length. */
export const binaryCopyHeader = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
const header = binaryCopyHeader;
/** Bytes per row: field count (2) + int8 key (4 + 8) + float4 score (4 + 4). */
const rowBytes = 22;

/**
 * Encodes (customer_id, score float4) rows in binary COPY format into one buffer: the key as an int8
 * field, or, with `keyBytes` (uuid and text keys), as the source's field bytes verbatim.
 * `out` is reused between chunks when large enough: the hot path allocates nothing per row.
 */
export function encodeScores(keys: BigInt64Array, scores: Float32Array, rows: number, out?: Buffer, keyBytes?: KeyBytes): Buffer {
  if (keyBytes !== undefined) return encodeKeyedScores(keys, scores, rows, keyBytes, out);
  const size = header.length + rows * rowBytes + 2;
  const buf = out && out.length >= size ? out : Buffer.allocUnsafe(Math.ceil(size * 1.25));
  header.copy(buf, 0);
  // DataView writes (big-endian by default) compile to plain stores; Buffer's write*BE helpers cost a call each.
  const view = new DataView(buf.buffer, buf.byteOffset, size);
  const keyView = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
  let p = header.length;
  for (let i = 0; i < rows; i++) {
    view.setInt16(p, 2);
    setKeyField(view, p + 2, keyView, i);
    view.setInt32(p + 14, 4);
    view.setFloat32(p + 18, scores[i]!);
    p += rowBytes;
  }
  view.setInt16(p, -1);
  return buf.subarray(0, size);
}

/** encodeScores for uuid and text keys: each key's field copied from keyBytes at the position keys[i] names. */
function encodeKeyedScores(keys: BigInt64Array, scores: Float32Array, rows: number, keyBytes: KeyBytes, out?: Buffer): Buffer {
  const size = header.length + keyBytes.fieldBytes(keys, rows) + rows * 10 + 2;
  const buf = out && out.length >= size ? out : Buffer.allocUnsafe(Math.ceil(size * 1.25));
  header.copy(buf, 0);
  const view = new DataView(buf.buffer, buf.byteOffset, size);
  const at = new Uint32Array(keys.buffer, keys.byteOffset, rows * 2);
  let p = header.length;
  for (let i = 0; i < rows; i++) {
    view.setInt16(p, 2);
    p = keyBytes.writeField(buf, view, p + 2, at[i * 2]!);
    view.setInt32(p, 4);
    view.setFloat32(p + 4, scores[i]!);
    p += 8;
  }
  view.setInt16(p, -1);
  return buf.subarray(0, size);
}

/** Row i's key as an int8 field (length 8, then the value) at p: 12 bytes. */
export function setKeyField(view: DataView, p: number, keyView: DataView, i: number): void {
  view.setInt32(p, 8);
  // The key's two little-endian halves, written big-endian: no BigInt per row.
  view.setInt32(p + 4, keyView.getInt32(i * 8 + 4, true));
  view.setUint32(p + 8, keyView.getUint32(i * 8, true));
}

/** `COPY table (columns) FROM STDIN (FORMAT binary)` of an encoded buffer, through pipeline. */
export async function copyBinary(client: pg.ClientBase, quotedTable: string, columns: string, encoded: Buffer): Promise<void> {
  await pipeline(Readable.from([encoded]), client.query(copyFrom(`COPY ${quotedTable} (${columns}) FROM STDIN (FORMAT binary)`)));
}

/** `COPY table (customer_id, score) FROM STDIN (FORMAT binary)` of an encoded buffer. */
export async function copyScores(client: pg.ClientBase, quotedTable: string, encoded: Buffer): Promise<void> {
  await copyBinary(client, quotedTable, 'customer_id, score', encoded);
}
