import type pg from 'pg';
import type { KeyBytes } from '../keyColumn.js';
import { binaryCopyHeader as header, copyBinary, setKeyField } from './copyWriter.js';

/** Bytes of a one-dimensional array's header in binary COPY: ndim, flags, element type, length, lower bound. */
const arrayHeader = 20;
const int2Oid = 21;
const float4Oid = 700;

/**
 * Encodes (customer_id, features int2[], contributions float4[]) rows in binary COPY format: `k`
 * reasons per row, features stored 1-based; the key as an int8 field, or with `keyBytes` (uuid and text
 * keys) as the source's field bytes verbatim. `out` is reused between chunks when large enough (the hot
 * path allocates nothing per row).
 */
export function encodeReasons(
  keys: BigInt64Array,
  reasons: { feature: Int16Array; contribution: Float32Array; k: number },
  rows: number,
  out?: Buffer,
  keyBytes?: KeyBytes,
): Buffer {
  const { feature, contribution, k } = reasons;
  const featureBytes = arrayHeader + k * 6;
  const contributionBytes = arrayHeader + k * 8;
  const keyFields = keyBytes ? keyBytes.fieldBytes(keys, rows) : rows * 12;
  const size = header.length + rows * (2 + 4 + featureBytes + 4 + contributionBytes) + keyFields + 2;
  const buf = out && out.length >= size ? out : Buffer.allocUnsafe(Math.ceil(size * 1.25));
  header.copy(buf, 0);
  const view = new DataView(buf.buffer, buf.byteOffset, size);
  const keyView = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
  const at = new Uint32Array(keys.buffer, keys.byteOffset, rows * 2);
  let p = header.length;
  for (let i = 0; i < rows; i++) {
    view.setInt16(p, 3);
    if (keyBytes) p = keyBytes.writeField(buf, view, p + 2, at[i * 2]!);
    else {
      setKeyField(view, p + 2, keyView, i);
      p += 14;
    }
    p = arrayStart(view, p, featureBytes, int2Oid, k);
    for (let j = 0; j < k; j++, p += 6) {
      view.setInt32(p, 2);
      view.setInt16(p + 4, feature[i * k + j]! + 1);
    }
    p = arrayStart(view, p, contributionBytes, float4Oid, k);
    for (let j = 0; j < k; j++, p += 8) {
      view.setInt32(p, 4);
      view.setFloat32(p + 4, contribution[i * k + j]!);
    }
  }
  view.setInt16(p, -1);
  return buf.subarray(0, size);
}

function arrayStart(view: DataView, p: number, bytes: number, oid: number, k: number): number {
  view.setInt32(p, bytes);
  view.setInt32(p + 4, 1);
  view.setInt32(p + 8, 0);
  view.setInt32(p + 12, oid);
  view.setInt32(p + 16, k);
  view.setInt32(p + 20, 1);
  return p + 24;
}

/** `COPY table (customer_id, features, contributions) FROM STDIN (FORMAT binary)`, through pipeline. */
export async function copyReasons(client: pg.ClientBase, quotedTable: string, encoded: Buffer): Promise<void> {
  await copyBinary(client, quotedTable, 'customer_id, features, contributions', encoded);
}
