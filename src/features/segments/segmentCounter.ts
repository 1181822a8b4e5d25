import type { ColumnBatch } from '../../columns.js';
import { psiBins } from '../../stats/psi.js';

/** One manifest segment column and the values it had when the run started (most rows first). */
export interface SegmentColumn {
  readonly column: string;
  readonly values: readonly string[];
}

/**
 * Where each segment's figures sit in one flat array. Each column has a slot per value, then one for
 * NULL, then one for the values not known when the run started ("other"). Each slot holds
 * `stride` numbers: rows scored, rows rejected, the sum of the scores, the scores in the PSI's ten bins
 * over [0, 1], the scores in the manifest's bands.
 */
export interface SegmentLayout {
  readonly columns: readonly SegmentColumn[];
  /** The first slot of each column. */
  readonly firstSlot: readonly number[];
  readonly slots: number;
  /** `output.bands`' bounds (empty without bands: then no band counts). */
  readonly bandBounds: readonly number[];
  readonly stride: number;
  readonly total: number;
}

export const rowsAt = 0;
export const rejectsAt = 1;
export const sumAt = 2;
export const binsAt = 3;

export function segmentLayout(columns: readonly SegmentColumn[], bandBounds: readonly number[]): SegmentLayout {
  const firstSlot: number[] = [];
  let slots = 0;
  for (const c of columns) {
    firstSlot.push(slots);
    slots += c.values.length + 2;
  }
  const bands = bandBounds.length === 0 ? 0 : bandBounds.length + 1;
  const stride = binsAt + psiBins + bands;
  return { columns, firstSlot, slots, bandBounds, stride, total: slots * stride };
}

/**
 * Counts one chunk at a time into one reused array. The chunk loop calls `rowsAccepted` right after the
 * champion's transform (the batch and the accepted keys, compacted in order) and `addScores` once the
 * chunk is scored. Every per-row loop runs over typed arrays and allocates nothing.
 */
export class SegmentCounter {
  readonly counts: Float64Array;
  /** The batch row of each accepted row (unused while every row was accepted). */
  private rowOf = new Int32Array(0);
  private everyRow = true;
  /** Per batch column's categories: the slot of each code (see columnOf). */
  private readonly slotMaps = new Map<readonly string[], Int32Array>();

  constructor(
    private readonly layout: SegmentLayout,
    /** Where each segment column is in the batch (the run reads it as text, matched against its values). */
    private readonly batchColumn: readonly number[],
  ) {
    this.counts = new Float64Array(layout.total);
  }

  /** A new chunk: `accepted` of the batch's rows were accepted, their keys `keys[0..accepted)`; the others are rejects. */
  rowsAccepted(batch: ColumnBatch, keys: BigInt64Array, accepted: number): void {
    this.counts.fill(0);
    const rows = batch.rows;
    this.everyRow = accepted === rows;
    if (this.everyRow) return;
    if (this.rowOf.length < batch.capacity) this.rowOf = new Int32Array(batch.capacity);
    // Keys compared as pairs of 32-bit halves: reading a BigInt64Array element would allocate a BigInt per row.
    const all = new Int32Array(batch.keys.buffer, batch.keys.byteOffset, rows * 2);
    const kept = new Int32Array(keys.buffer, keys.byteOffset, accepted * 2);
    const rowOf = this.rowOf;
    let j = 0;
    for (let r = 0; r < rows; r++) if (j < accepted && all[2 * r] === kept[2 * j] && all[2 * r + 1] === kept[2 * j + 1]) rowOf[j++] = r;
    // The rejected rows are those between the accepted ones: a reject of its segment in every column.
    for (let k = 0; k < this.batchColumn.length; k++) {
      const { nulls, codes, nullSlot, slotOf } = this.columnOf(batch, k);
      const { stride } = this.layout;
      let next = 0;
      for (let r = 0; r < rows; r++) {
        if (next < accepted && rowOf[next] === r) {
          next++;
          continue;
        }
        this.counts[(nulls[r] ? nullSlot : slotOf[codes[r]! + 1]!) * stride + rejectsAt]! += 1;
      }
    }
  }

  /** The chunk's scores, row j of the accepted rows gave `scores[j]`; a non-finite score is a reject. */
  addScores(batch: ColumnBatch, scores: Float32Array, rows: number): void {
    const { stride, bandBounds } = this.layout;
    const bands = bandBounds.length;
    const bandAt = binsAt + psiBins;
    const counts = this.counts;
    const rowOf = this.rowOf;
    const everyRow = this.everyRow;
    for (let k = 0; k < this.batchColumn.length; k++) {
      // Per column, not per row: the loop below reads only typed arrays and numbers.
      const { nulls, codes, nullSlot, slotOf } = this.columnOf(batch, k);
      for (let j = 0; j < rows; j++) {
        const r = everyRow ? j : rowOf[j]!;
        const at = (nulls[r] ? nullSlot : slotOf[codes[r]! + 1]!) * stride;
        const s = scores[j]!;
        if (!Number.isFinite(s)) {
          counts[at + rejectsAt]! += 1;
          continue;
        }
        counts[at + rowsAt]! += 1;
        counts[at + sumAt]! += s;
        // The run's PSI bins: ten equal bins over [0, 1], scores below in the first and above in the last.
        counts[at + binsAt + (s <= 0 ? 0 : s >= 1 ? psiBins - 1 : Math.min(psiBins - 1, Math.floor(s * psiBins)))]! += 1;
        if (bands > 0) {
          let b = 0;
          while (b < bands && bandBounds[b]! <= s) b++;
          counts[at + bandAt + b]! += 1;
        }
      }
    }
  }

  /**
   * Segment column k as the loops read it: its NULLs and codes, its NULL slot, and the slot of each code
   * (`slotOf[code + 1]`: a code of -1, a value not in the column's categories, is "other"). The batch
   * column's categories may be the segment's values (a column of its own) or a feature's categories that
   * hold every one of them (the feature's column, read once for both); other categories count as "other".
   */
  private columnOf(batch: ColumnBatch, k: number): { nulls: Uint8Array; codes: Int32Array; nullSlot: number; slotOf: Int32Array } {
    const col = batch.columns[this.batchColumn[k]!]!;
    const first = this.layout.firstSlot[k]!;
    const values = this.layout.columns[k]!.values;
    const nullSlot = first + values.length;
    // A column always read as text is a category column; anything else counts as "other".
    if (col.kind !== 'category') return { nulls: col.nulls, codes: new Int32Array(batch.capacity).fill(-1), nullSlot, slotOf: Int32Array.of(nullSlot + 1) };
    let slotOf = this.slotMaps.get(col.categories);
    if (!slotOf) {
      const index = new Map(values.map((v, i) => [v, i]));
      slotOf = Int32Array.from([null, ...col.categories], (c) => {
        const i = c === null ? undefined : index.get(c);
        return i === undefined ? nullSlot + 1 : first + i;
      });
      this.slotMaps.set(col.categories, slotOf);
    }
    return { nulls: col.nulls, codes: col.codes, nullSlot, slotOf };
  }
}
