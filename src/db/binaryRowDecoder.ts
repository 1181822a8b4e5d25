import { allocateBatch, type ColumnBatch, type RawColumn, type RawColumnKind } from '../columns.js';

/**
 * How a feature column travels in the binary COPY: as its own type when the decoder reads that type
 * natively (no conversion work in the server), else as what the kind's cast produces.
 */
export type WireType = 'int2' | 'int4' | 'int8' | 'float4' | 'float8' | 'numeric' | 'bool' | 'text';

/** What a column is cast to when its source type is not known (or not read natively). */
export const castWire: Record<RawColumnKind, WireType> = { float8: 'float8', bool: 'bool', category: 'text' };
const signature = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

// Wire types as small integers: the per-field switch compares numbers, not strings.
const FLOAT8 = 0;
const BOOL = 1;
const TEXT = 2;
const INT4 = 3;
const NUMERIC = 4;
const INT2 = 5;
const INT8 = 6;
const FLOAT4 = 7;
const wireCode: Record<WireType, number> = { float8: FLOAT8, bool: BOOL, text: TEXT, int4: INT4, numeric: NUMERIC, int2: INT2, int8: INT8, float4: FLOAT4 };
/** Bytes of a fixed-width wire type (0: variable). */
const wireBytes = [8, 1, 0, 4, 0, 2, 8, 4];

/**
 * Decodes PostgreSQL's binary COPY format straight into the batch's typed arrays, from byte ranges of
 * whatever buffers the data arrives in. A row split between ranges is copied to a small scratch buffer
 * and completed from the next range; everything else is decoded in place.
 */
export class BinaryRowDecoder {
  batch: ColumnBatch;
  /** True once the end-of-data marker was read. */
  ended = false;
  /** The bytes of a row (or of the header) begun in an earlier range: scratch[0, carried). */
  private scratch = Buffer.allocUnsafe(4096);
  private scratchView = new DataView(this.scratch.buffer, this.scratch.byteOffset, this.scratch.byteLength);
  private carried = 0;
  private headerDone = false;
  private readonly kinds: Uint8Array;
  private keyView!: DataView;
  private nulls!: Uint8Array[];
  private float8s!: Float64Array[];
  private bools!: Uint8Array[];
  private codes!: Int32Array[];
  private readonly categoryBytes: Buffer[][];

  /** `wire`: the wire type of each column (default: what the kinds' casts produce). */
  constructor(batch: ColumnBatch, wire?: readonly WireType[]) {
    batch.rows = 0;
    this.batch = batch;
    this.kinds = Uint8Array.from(batch.columns, (c, i) => {
      const w = wire?.[i] ?? castWire[c.kind];
      if (c.kind !== 'float8' && w !== castWire[c.kind]) throw new Error(`column ${c.name} (${c.kind}) cannot be read as ${w}`);
      return wireCode[w];
    });
    this.categoryBytes = batch.columns.map((c) => (c.kind === 'category' ? c.categories.map((s) => Buffer.from(s, 'utf8')) : []));
    this.bind(batch);
  }

  /** Hoists the batch's arrays into flat per-column lists the per-row loop indexes without property lookups. */
  private bind(batch: ColumnBatch): void {
    const none64 = new Float64Array(0);
    const none8 = new Uint8Array(0);
    const none32 = new Int32Array(0);
    this.keyView = new DataView(batch.keys.buffer, batch.keys.byteOffset, batch.keys.byteLength);
    this.nulls = batch.columns.map((c) => c.nulls);
    this.float8s = batch.columns.map((c) => (c.kind === 'float8' ? c.values : none64));
    this.bools = batch.columns.map((c) => (c.kind === 'bool' ? c.values : none8));
    this.codes = batch.columns.map((c) => (c.kind === 'category' ? c.codes : none32));
  }

  /** Decodes the rows in buf[from, to) (`view` spans buf), carrying an incomplete last row to the next call. */
  feed(buf: Buffer, view: DataView, from: number, to: number): void {
    let p = from;
    if (this.carried > 0 || !this.headerDone) p = this.finishCarried(buf, from, to);
    if (p < to) {
      const used = this.decode(buf, view, p, to, Infinity);
      if (used < to) this.carry(buf, used, to);
    }
  }

  /**
   * Completes the carried row (or header) with the first bytes of buf[from, to): appends a slice, tries to
   * decode one row, and appends more while it is incomplete. Returns where the rest of the range starts.
   */
  private finishCarried(buf: Buffer, from: number, to: number): number {
    const before = this.carried;
    let take = Math.min(to - from, 1024);
    for (;;) {
      this.carry(buf, from + this.carried - before, from + take);
      const used = this.decode(this.scratch, this.scratchView, 0, this.carried, 1);
      if (used > 0 || this.ended) {
        this.carried = 0;
        return this.ended ? to : from + used - before;
      }
      if (take === to - from) return to; // still incomplete: the whole range is carried
      take = Math.min(to - from, take * 4);
    }
  }

  /** Appends buf[from, to) to the carried bytes. */
  private carry(buf: Buffer, from: number, to: number): void {
    const need = this.carried + (to - from);
    if (need > this.scratch.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, this.scratch.length * 2));
      this.scratch.copy(bigger, 0, 0, this.carried);
      this.scratch = bigger;
      this.scratchView = new DataView(bigger.buffer, bigger.byteOffset, bigger.byteLength);
    }
    this.carried += buf.copy(this.scratch, this.carried, from, to);
  }

  /** Decodes up to maxRows complete rows of buf[p, end); returns the offset after the last one (p if none). */
  private decode(buf: Buffer, view: DataView, p: number, end: number, maxRows: number): number {
    if (!this.headerDone) {
      if (end - p < 19) return p;
      if (buf.compare(signature, 0, 11, p, p + 11) !== 0) throw new Error('not a binary COPY stream');
      const extension = view.getUint32(p + 15);
      if (end - p < 19 + extension) return p;
      p += 19 + extension;
      this.headerDone = true;
    }
    const { kinds, categoryBytes } = this;
    let { nulls, float8s, bools, codes } = this;
    const columnCount = kinds.length;
    const fieldCount = columnCount + 1;
    let decoded = 0;
    // The per-row loop: DataView reads into typed arrays, no objects or strings (it runs once per source row).
    while (decoded < maxRows && p + 2 <= end) {
      const fields = view.getInt16(p);
      if (fields === -1) {
        this.ended = true;
        return end;
      }
      if (fields !== fieldCount) throw new Error(`binary COPY row has ${fields} fields, expected ${fieldCount}`);
      const rowStart = p;
      if (p + 6 > end) return rowStart;
      const keyLen = view.getInt32(p + 2);
      if (p + 6 + keyLen > end) return rowStart;
      if (this.batch.rows === this.batch.capacity) {
        this.grow();
        ({ nulls, float8s, bools, codes } = this);
      }
      const row = this.batch.rows;
      this.decodeKey(buf, view, p, row, keyLen);
      p += 6 + keyLen;
      for (let c = 0; c < columnCount; c++) {
        if (p + 4 > end) return rowStart;
        const len = view.getInt32(p);
        p += 4;
        if (len === -1) {
          nulls[c]![row] = 1;
          continue;
        }
        if (p + len > end) return rowStart;
        nulls[c]![row] = 0;
        const kind = kinds[c]!;
        if (len !== wireBytes[kind] && wireBytes[kind] !== 0)
          throw new Error(`binary COPY field of column ${this.batch.columns[c]?.name} has ${len} bytes, expected ${wireBytes[kind]}`);
        switch (kind) {
          case FLOAT8:
            float8s[c]![row] = view.getFloat64(p);
            break;
          case INT4:
            float8s[c]![row] = view.getInt32(p);
            break;
          case NUMERIC:
            numericInto(view, p, len, float8s[c]!, row);
            break;
          case BOOL:
            bools[c]![row] = buf[p] === 0 ? 0 : 1;
            break;
          case TEXT:
            codes[c]![row] = matchCategory(buf, p, len, categoryBytes[c]!);
            break;
          case INT2:
            float8s[c]![row] = view.getInt16(p);
            break;
          case INT8:
            // Exact below 2^53, else rounded once to the nearest double, as the server's int8-to-float8 cast does.
            float8s[c]![row] = view.getInt32(p) * 4294967296 + view.getUint32(p + 4);
            break;
          default:
            float8s[c]![row] = view.getFloat32(p);
        }
        p += len;
      }
      this.batch.rows = row + 1;
      decoded++;
    }
    return p;
  }

  /** Row `row`'s key, whose field (length keyLen) starts at p + 2. */
  private decodeKey(buf: Buffer, view: DataView, p: number, row: number, keyLen: number): void {
    const keyBytes = this.batch.keyBytes;
    if (keyBytes === undefined) {
      if (keyLen !== 8) throw new Error('source key is NULL or not int8');
      // Key: int8, copied as two 32-bit halves into the BigInt64Array's memory (no BigInt allocated).
      this.keyView.setInt32(row * 8 + 4, view.getInt32(p + 6), true);
      this.keyView.setUint32(row * 8, view.getUint32(p + 10), true);
      return;
    }
    if (keyLen < 0) throw new Error('source key is NULL');
    // uuid or text key: its field bytes kept verbatim; keys[row] names its position there (src/keyColumn.ts).
    keyBytes.put(row, buf, p + 6, keyLen);
    this.keyView.setInt32(row * 8 + 4, 0, true);
    this.keyView.setUint32(row * 8, row, true);
  }

  /** More rows than planned (rows added since planning): grow by half, keeping what was decoded. */
  private grow(): void {
    const old = this.batch;
    const bigger = allocateBatch(
      old.columns.map((c) => ({ name: c.name, kind: c.kind, ...(c.kind === 'category' ? { categories: c.categories } : {}) })),
      Math.ceil(old.capacity * 1.5) + 16,
    );
    bigger.keys.set(old.keys);
    bigger.keyBytes = old.keyBytes?.grown(bigger.capacity, old.rows);
    bigger.columns.forEach((c, i) => {
      const o = old.columns[i] as RawColumn;
      c.nulls.set(o.nulls);
      if (c.kind === 'category' && o.kind === 'category') c.codes.set(o.codes);
      else if (c.kind === 'float8' && o.kind === 'float8') c.values.set(o.values);
      else if (c.kind === 'bool' && o.kind === 'bool') c.values.set(o.values);
    });
    bigger.rows = old.rows;
    this.batch = bigger;
    this.bind(bigger);
  }
}

/** Index of the category whose UTF-8 bytes equal buf[p, p+len), or -1. A byte loop: categories are short. */
function matchCategory(buf: Buffer, p: number, len: number, categories: Buffer[]): number {
  for (let k = 0; k < categories.length; k++) {
    const cat = categories[k] as Buffer;
    if (cat.length !== len) continue;
    let i = 0;
    while (i < len && cat[i] === buf[p + i]) i++;
    if (i === len) return k;
  }
  return -1;
}

/** 10^0 .. 10^22: every one exact in a double. */
const powersOfTen = Float64Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));

/**
 * Stores a binary numeric (int16 ndigits, weight, sign, dscale, then ndigits base-10000 digits) into
 * out[i] as the double nearest to it, the same value the server's numeric-to-float8 cast gives. Fast
 * path: the digits form an integer below 2^53 and the decimal exponent is within ±22, so one exact
 * multiply or divide by a power of ten rounds correctly; anything else goes through a decimal string,
 * also correctly rounded. It stores rather than returns: a double returned from a call that is not
 * inlined is boxed, an allocation per value.
 */
function numericInto(view: DataView, p: number, len: number, out: Float64Array, i: number): void {
  const ndigits = view.getInt16(p);
  const weight = view.getInt16(p + 2);
  const sign = view.getUint16(p + 4);
  if (sign === 0xc000) {
    out[i] = NaN;
    return;
  }
  if (sign === 0xd000 || sign === 0xf000) {
    out[i] = sign === 0xd000 ? Infinity : -Infinity;
    return;
  }
  if (len !== 8 + 2 * ndigits) throw new Error(`binary numeric of ${len} bytes has ${ndigits} digits`);
  let m = 0;
  for (let k = 0; k < ndigits; k++) m = m * 10000 + view.getInt16(p + 8 + 2 * k);
  if (m === 0) {
    out[i] = 0;
    return;
  }
  const e = 4 * (weight - ndigits + 1);
  let v: number;
  if (m <= 9007199254740992 && e >= -22 && e <= 22) v = e >= 0 ? m * powersOfTen[e]! : m / powersOfTen[-e]!;
  else v = Number(`${numericDigits(view, p + 8, ndigits)}e${e}`);
  out[i] = sign === 0x4000 ? -v : v;
}

function numericDigits(view: DataView, p: number, ndigits: number): string {
  let digits = '';
  for (let k = 0; k < ndigits; k++) digits += String(view.getInt16(p + 2 * k)).padStart(4, '0');
  return digits;
}
