/**
 * How a source key travels from the COPY reader to the COPY writers. Three variants:
 * - `int8` (smallint, integer, bigint keys): the batch's `keys` hold the key itself (as today: two 32-bit halves, no BigInt).
 * - `uuid`: fixed width, 16 bytes per key, kept verbatim in {@link KeyBytes}.
 * - `text` (text, varchar): variable width, offsets + UTF-8 bytes, kept verbatim in {@link KeyBytes}.
 *
 * For uuid and text the batch's `keys` hold each row's position in its KeyBytes instead of the key: the
 * transforms and score filters move those 64-bit values exactly as they move int8 keys (so they need no
 * branch), and the writers copy the key's field bytes verbatim into the binary COPY of the score,
 * reasons and rejects tables, whose customer_id has the source key's type. Keys are never compared in
 * JavaScript: every ordering is SQL's, in the key column's own collation.
 */
export type KeyType = 'int8' | 'uuid' | 'text';

/**
 * A chunk bound: an int8 key as a bigint, a uuid or text key as the text the database gave for it
 * (`key::text`, never user input); null is no bound.
 */
export type KeyBound = bigint | string | null;

/** A bound as stored in score_chunks: int8 bounds in key_lo/key_hi (bigint), the others in key_lo_text/key_hi_text. */
export function boundOf(int8: string | null, text: string | null | undefined): KeyBound {
  if (text !== null && text !== undefined) return text;
  return int8 === null ? null : BigInt(int8);
}

/** The SQL type the reader casts the key to, and the type of customer_id in a schema of that key type. */
export const keySqlType: Record<KeyType, string> = { int8: 'int8', uuid: 'uuid', text: 'text' };

/** The key type of a column of this SQL type (typname of the type or of a domain's base), or undefined when it cannot be a key. */
export function keyTypeOf(typname: string): KeyType | undefined {
  if (typname === 'int2' || typname === 'int4' || typname === 'int8') return 'int8';
  if (typname === 'uuid') return 'uuid';
  if (typname === 'text' || typname === 'varchar') return 'text';
  return undefined;
}

const uuidBytes = 16;

/** The key field bytes of a chunk's rows (uuid or text keys), in the order the reader decoded them. */
export class KeyBytes {
  /** 16 for uuid, 0 for a variable width (text). */
  readonly width: number;
  /** The keys' bytes: row i is bytes[start(i), start(i) + length(i)). */
  bytes: Buffer;
  /** text: row i's bytes start at offsets[i] and end at offsets[i + 1]. */
  offsets: Int32Array;

  constructor(
    readonly type: 'uuid' | 'text',
    capacity: number,
  ) {
    this.width = type === 'uuid' ? uuidBytes : 0;
    this.bytes = Buffer.allocUnsafe(Math.max(capacity, 1) * (type === 'uuid' ? uuidBytes : 16));
    this.offsets = new Int32Array(type === 'uuid' ? 0 : capacity + 1);
  }

  /** Stores row `row`'s key field, buf[p, p + len). Rows arrive in order, from 0. */
  put(row: number, buf: Buffer, p: number, len: number): void {
    if (this.width !== 0) {
      if (len !== this.width) throw new Error(`binary COPY key field has ${len} bytes, expected ${this.width} (uuid)`);
      this.ensureBytes((row + 1) * this.width);
      buf.copy(this.bytes, row * this.width, p, p + len);
      return;
    }
    if (row + 2 > this.offsets.length) this.growOffsets(row + 2);
    const at = row === 0 ? 0 : this.offsets[row]!;
    this.offsets[row] = at;
    this.ensureBytes(at + len);
    buf.copy(this.bytes, at, p, p + len);
    this.offsets[row + 1] = at + len;
  }

  /** Bytes of row `row`'s key. */
  length(row: number): number {
    return this.width !== 0 ? this.width : this.offsets[row + 1]! - this.offsets[row]!;
  }

  start(row: number): number {
    return this.width !== 0 ? row * this.width : this.offsets[row]!;
  }

  /**
   * Bytes of the key fields (length word included) of the rows `keys[0..rows)` name: what a writer
   * reserves before it encodes them.
   */
  fieldBytes(keys: BigInt64Array, rows: number): number {
    if (this.width !== 0) return rows * (4 + this.width);
    const halves = new Uint32Array(keys.buffer, keys.byteOffset, rows * 2);
    let n = rows * 4;
    for (let i = 0; i < rows; i++) n += this.length(halves[i * 2]!);
    return n;
  }

  /** Writes the key field (length, then the bytes verbatim) of source row `row` at p; returns the offset after it. */
  writeField(out: Buffer, view: DataView, p: number, row: number): number {
    const len = this.length(row);
    const from = this.start(row);
    view.setInt32(p, len);
    this.bytes.copy(out, p + 4, from, from + len);
    return p + 4 + len;
  }

  /** The key as text (for a reject's row: rare, so a string is fine). */
  text(row: number): string {
    const from = this.start(row);
    if (this.width === 0) return this.bytes.toString('utf8', from, from + this.length(row));
    const hex = this.bytes.toString('hex', from, from + uuidBytes);
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /** A copy with room for `capacity` rows, keeping the first `rows` keys (the batch grew). */
  grown(capacity: number, rows: number): KeyBytes {
    const bigger = new KeyBytes(this.type, capacity);
    const used = rows === 0 ? 0 : this.start(rows - 1) + this.length(rows - 1);
    bigger.ensureBytes(used);
    this.bytes.copy(bigger.bytes, 0, 0, used);
    if (this.width === 0) bigger.offsets.set(this.offsets.subarray(0, rows + 1));
    return bigger;
  }

  private ensureBytes(n: number): void {
    if (n <= this.bytes.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(n, this.bytes.length * 2));
    this.bytes.copy(bigger, 0, 0, this.bytes.length);
    this.bytes = bigger;
  }

  private growOffsets(n: number): void {
    const bigger = new Int32Array(Math.max(n, this.offsets.length * 2));
    bigger.set(this.offsets);
    this.offsets = bigger;
  }
}

/** The position in a KeyBytes that row i of `keys` names (uuid and text keys: see {@link KeyBytes}). */
export function keyRowOf(keys: BigInt64Array, i: number): number {
  return Number(keys[i]!);
}
