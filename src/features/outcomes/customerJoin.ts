import { negative, positive, unknown } from '../../stats/outcomeFigures.js';

/**
 * The outcome of each scored customer: its outcome rows joined by key, as bool_or of their labels (positive
 * if any is, else negative if any is, else {@link unknown}, which is also what a customer without a row
 * gets). `scoredKeys` are unique (a run has one score per customer); outcome rows of customers not scored
 * are ignored.
 *
 * A hash join over typed arrays: a table of rows by key built over the scored keys, probed by the outcome
 * rows; the keys are read as two 32-bit halves, so no BigInt is made per row. Keys within a span of a few
 * times their number (a serial key) index an array directly; others go through an open-addressing table.
 * The server did this join in about 0.65 s of CPU for a million customers.
 */
export function joinOutcomes(
  scoredKeys: BigInt64Array,
  scoredRows: number,
  outcomes: { keys: BigInt64Array; rows: number; labels: Uint8Array; nulls: Uint8Array },
): Uint8Array {
  const table = DenseKeys.over(scoredKeys, scoredRows) ?? new KeyTable(scoredKeys, scoredRows);
  const labels = new Uint8Array(scoredRows).fill(unknown);
  const halves = new Int32Array(outcomes.keys.buffer, outcomes.keys.byteOffset, 2 * outcomes.rows);
  for (let j = 0; j < outcomes.rows; j++) {
    const i = table.find(halves[2 * j]!, halves[2 * j + 1]!);
    if (i < 0) continue;
    const was = labels[i]!;
    const label = outcomes.nulls[j] === 1 ? unknown : outcomes.labels[j]!;
    labels[i] = was === positive || label === positive ? positive : was === negative || label === negative ? negative : unknown;
  }
  return labels;
}

/** Row numbers by int8 key, the keys unique: linear probing, at most half full; a slot is (low half, high half, row + 1). */
class KeyTable {
  private readonly slots: Int32Array;
  private readonly mask: number;

  constructor(keys: BigInt64Array, rows: number) {
    let size = 16;
    while (size < 2 * rows) size *= 2;
    this.mask = size - 1;
    this.slots = new Int32Array(3 * size);
    const halves = new Int32Array(keys.buffer, keys.byteOffset, 2 * rows);
    for (let i = 0; i < rows; i++) {
      const lo = halves[2 * i]!;
      const hi = halves[2 * i + 1]!;
      let s = this.slotOf(lo, hi);
      while (this.slots[3 * s + 2] !== 0) s = (s + 1) & this.mask;
      this.slots[3 * s] = lo;
      this.slots[3 * s + 1] = hi;
      this.slots[3 * s + 2] = i + 1;
    }
  }

  /** The row of the key (lo, hi), or -1. */
  find(lo: number, hi: number): number {
    const slots = this.slots;
    for (let s = this.slotOf(lo, hi); ; s = (s + 1) & this.mask) {
      const row = slots[3 * s + 2]!;
      if (row === 0) return -1;
      if (slots[3 * s] === lo && slots[3 * s + 1] === hi) return row - 1;
    }
  }

  private slotOf(lo: number, hi: number): number {
    const h = Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1);
    return (h ^ (h >>> 16)) & this.mask;
  }
}

const twoTo32 = 4294967296;

/** Row numbers by key for keys in [min, min + span): an Int32Array of row + 1 indexed by key - min. */
class DenseKeys {
  private constructor(
    private readonly min: number,
    private readonly slots: Int32Array,
  ) {}

  /** The table, when the keys are exact doubles spanning at most 4 per row (and 1024 more); else undefined. */
  static over(keys: BigInt64Array, rows: number): DenseKeys | undefined {
    const halves = new Int32Array(keys.buffer, keys.byteOffset, 2 * rows);
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < rows; i++) {
      const hi = halves[2 * i + 1]!;
      if (hi < -0x200000 || hi >= 0x200000) return undefined;
      const key = hi * twoTo32 + (halves[2 * i]! >>> 0);
      if (key < min) min = key;
      if (key > max) max = key;
    }
    if (rows === 0 || max - min >= 4 * rows + 1024) return undefined;
    const slots = new Int32Array(max - min + 1);
    for (let i = 0; i < rows; i++) slots[halves[2 * i + 1]! * twoTo32 + (halves[2 * i]! >>> 0) - min] = i + 1;
    return new DenseKeys(min, slots);
  }

  find(lo: number, hi: number): number {
    if (hi < -0x200000 || hi >= 0x200000) return -1;
    const at = hi * twoTo32 + (lo >>> 0) - this.min;
    return at >= 0 && at < this.slots.length ? this.slots[at]! - 1 : -1;
  }
}
