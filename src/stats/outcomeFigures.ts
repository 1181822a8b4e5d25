import { expectedCalibrationError, topBinLift, type CalibrationBin } from './classification.js';

/**
 * Every figure of `scorejob outcomes sync` for one run (docs/outcomes.md), per band and for the whole run,
 * from the run's scored customers joined to their outcomes: one sort of the scores, then one pass over them
 * in increasing order. The functions of classification.ts are the definitions; this computes all of them
 * at once, over typed arrays, for a million customers in a fraction of a second.
 */

/** A customer's outcome as `labels` holds it. */
export const negative = 0;
export const positive = 1;
/** No outcome in the run's window (and not counted as a negative): in `customers`, in no realised figure. */
export const unknown = 2;

/** One run's scored customers, row i in each array (the first `rows` entries). */
export interface ScoredOutcomes {
  rows: number;
  /** The scores: float4 values (as the score tables store them), read as doubles. */
  scores: Float64Array;
  /** {@link negative}, {@link positive} or {@link unknown}. */
  labels: Uint8Array;
  /** Index in `bandNames` of the row's band, -1 for none. */
  bands: Int32Array;
  bandNames: readonly string[];
}

/** The figures of one segment: a band, or the whole run (band null). */
export interface SegmentFigures {
  band: string | null;
  customers: number;
  withOutcome: number;
  positives: number;
  /** Null without both classes (as `ks`). */
  auc: number | null;
  ks: number | null;
  /** Null without any outcome (as `logLoss`). */
  brier: number | null;
  logLoss: number | null;
  expectedPositiveRate: number | null;
  estimatedAuc: number | null;
  /** The score deciles of the customers with an outcome that hold any, lowest first; null when none does. */
  deciles: { customers: number[]; predicted: number[]; observed: number[] } | null;
  ece: number | null;
  topDecileLift: number | null;
  /** About 50 points of the ROC curve (the whole run only; null without both classes). */
  roc: { fpr: number[]; tpr: number[] } | null;
}

// The rows are ordered by a radix sort of the scores' float4 bits made order-preserving as unsigned
// integers, each carrying its row's label and band + 1 as label * 2^18 + band + 1: no comparator callback,
// no index to follow afterwards.
const bandSpan = 2 ** 18;
const rocPoints = 50;

/** The figures of the whole run (first) and of each band that has customers (by name). */
export function outcomeFigures(input: ScoredOutcomes): SegmentFigures[] {
  if (input.bandNames.length >= bandSpan - 1) throw new Error(`${input.bandNames.length} bands: at most ${bandSpan - 2} are supported`);
  const segments = countSegments(input);
  if (segments[0]!.customers === 0) return [];
  walkScores(sortRows(input), segments);
  const figures = segments.filter((s) => s.customers > 0).map((s) => s.figures());
  const bands = figures.slice(1).sort((a, b) => ((a.band ?? '') < (b.band ?? '') ? -1 : (a.band ?? '') > (b.band ?? '') ? 1 : 0));
  return [figures[0]!, ...bands];
}

/** Segment 0 is the whole run, segment 1 + i band i: their totals, which the pass needs before it starts. */
function countSegments(input: ScoredOutcomes): Segment[] {
  const segments = [new Segment(null, true), ...input.bandNames.map((name) => new Segment(name, false))];
  const { labels, bands } = input;
  for (let i = 0; i < input.rows; i++) {
    const label = labels[i]!;
    segments[0]!.count(label);
    const band = bands[i]!;
    if (band >= 0) segments[band + 1]!.count(label);
  }
  return segments;
}

/** The rows in increasing score: each one's ordered score bits, and its label and band. */
interface SortedRows {
  keys: Uint32Array;
  payloads: Uint32Array;
}

function sortRows(input: ScoredOutcomes): SortedRows {
  const n = input.rows;
  const f32 = Float32Array.from(input.scores.subarray(0, n));
  const bits = new Uint32Array(f32.buffer);
  const keys = new Uint32Array(n);
  const payloads = new Uint32Array(n);
  const { labels, bands } = input;
  for (let i = 0; i < n; i++) {
    // -0 sorts (and groups) with 0, and every NaN above +Infinity, as PostgreSQL orders floats.
    const b = f32[i] === 0 ? 0 : f32[i] !== f32[i] ? 0x7fc00000 : bits[i]!;
    keys[i] = b >= 0x80000000 ? ~b : b + 0x80000000;
    payloads[i] = labels[i]! * bandSpan + bands[i]! + 1;
  }
  return radixSort({ keys, payloads });
}

/** LSD radix sort on 11, 11 and 10 bits (stable); a pass whose digit is the same in every key is skipped. */
function radixSort(rows: SortedRows): SortedRows {
  let from = rows;
  let to: SortedRows = { keys: new Uint32Array(rows.keys.length), payloads: new Uint32Array(rows.keys.length) };
  for (const [shift, width] of [
    [0, 11],
    [11, 11],
    [22, 10],
  ] as const) {
    const mask = (1 << width) - 1;
    const starts = new Uint32Array(mask + 2);
    const { keys, payloads } = from;
    for (let i = 0; i < keys.length; i++) starts[((keys[i]! >>> shift) & mask) + 1]!++;
    if (starts.includes(keys.length)) continue;
    for (let d = 1; d < starts.length; d++) starts[d]! += starts[d - 1]!;
    for (let i = 0; i < keys.length; i++) {
      const at = starts[(keys[i]! >>> shift) & mask]!++;
      to.keys[at] = keys[i]!;
      to.payloads[at] = payloads[i]!;
    }
    [from, to] = [to, from];
  }
  return from;
}

const scratchBits = new Uint32Array(1);
const scratchFloat = new Float32Array(scratchBits.buffer);

/** The score of an ordered key's float4 bits. */
function scoreOf(ordered: number): number {
  scratchBits[0] = ordered >= 0x80000000 ? ordered - 0x80000000 : ~ordered >>> 0;
  return scratchFloat[0]!;
}

/**
 * The pass in increasing score: each run of equal scores (ties share their mean rank, and step the KS and ROC
 * together) is counted per segment, then added to each segment it touched.
 */
function walkScores(rows: SortedRows, segments: Segment[]): void {
  const { keys, payloads } = rows;
  const whole = segments[0]!;
  const touched = new Int32Array(segments.length);
  for (let i = 0; i < keys.length;) {
    const ordered = keys[i]!;
    let nTouched = 0;
    for (; i < keys.length && keys[i] === ordered; i++) {
      const payload = payloads[i]!;
      const label = payload >>> 18;
      whole.add(label);
      const band = payload & (bandSpan - 1);
      if (band === 0) continue;
      const s = segments[band]!;
      if (s.groupN === 0) touched[nTouched++] = band;
      s.add(label);
    }
    const p = scoreOf(ordered);
    whole.flush(p);
    for (let t = 0; t < nTouched; t++) segments[touched[t]!]!.flush(p);
  }
}

/** One segment's totals, running sums and the current group of tied scores. */
class Segment {
  customers = 0;
  withOutcome = 0;
  positives = 0;
  groupN = 0;
  private groupM = 0;
  private groupPos = 0;
  /** Customers with an outcome scored lower than the current group. */
  private mBefore = 0;
  private posCum = 0;
  private negCum = 0;
  /** Expected negatives (the scores read as probabilities) scored lower: for the estimated AUC. */
  private qBefore = 0;
  private rankSum = 0;
  private ks = -1;
  private brierSum = 0;
  private logLossSum = 0;
  private np = 0;
  private nq = 0;
  private npq = 0;
  private concordant = 0;
  private readonly decileM = new Float64Array(10);
  private readonly decileMp = new Float64Array(10);
  private readonly decilePos = new Float64Array(10);
  private readonly rocFpr: Float64Array | undefined;
  private readonly rocTpr: Float64Array | undefined;

  constructor(
    readonly band: string | null,
    whole: boolean,
  ) {
    if (whole) {
      this.rocFpr = new Float64Array(rocPoints + 1).fill(Infinity);
      this.rocTpr = new Float64Array(rocPoints + 1).fill(Infinity);
    }
  }

  count(label: number): void {
    this.customers++;
    if (label === unknown) return;
    this.withOutcome++;
    this.positives += label;
  }

  add(label: number): void {
    this.groupN++;
    if (label === unknown) return;
    this.groupM++;
    this.groupPos += label;
  }

  /** Adds the group of tied scores `p` to the running sums: the terms of the SQL figures, in score order. */
  flush(p: number): void {
    const n = this.groupN;
    const m = this.groupM;
    const pos = this.groupPos;
    const q = 1 - p;
    const total = this.withOutcome;
    const negatives = total - this.positives;
    if (m > 0) {
      const d = Math.min(9, Math.floor((this.mBefore * 10) / total));
      this.decileM[d] = this.decileM[d]! + m;
      this.decileMp[d] = this.decileMp[d]! + m * p;
      this.decilePos[d] = this.decilePos[d]! + pos;
      this.rankSum += pos * (this.mBefore + (m + 1) / 2);
      this.posCum += pos;
      this.negCum += m - pos;
      this.brierSum += pos * q * q + (m - pos) * p * p;
      // Only the logarithms a term needs: a group is mostly one customer, one class.
      const c = Math.min(Math.max(p, 1e-15), 1 - 1e-15);
      if (pos > 0) this.logLossSum -= pos * Math.log(c);
      if (m > pos) this.logLossSum -= (m - pos) * Math.log(1 - c);
    }
    if (this.positives > 0 && negatives > 0) {
      // Every group, customers without an outcome too: a bucket of only those still has its point.
      this.ks = Math.max(this.ks, Math.abs(this.posCum / this.positives - this.negCum / negatives));
      if (this.rocFpr !== undefined) this.rocPoint(Math.floor(((this.mBefore + m) * rocPoints) / total), negatives);
    }
    this.np += n * p;
    this.nq += n * q;
    this.npq += n * p * q;
    this.concordant += n * p * (this.qBefore + (n * q) / 2);
    this.qBefore += n * q;
    this.mBefore += m;
    this.groupN = this.groupM = this.groupPos = 0;
  }

  /** A bucket's point is at its highest score: both rates fall as the threshold rises, so its minimum of each. */
  private rocPoint(bucket: number, negatives: number): void {
    const fpr = (negatives - this.negCum) / negatives;
    const tpr = (this.positives - this.posCum) / this.positives;
    if (fpr < this.rocFpr![bucket]!) this.rocFpr![bucket] = fpr;
    if (tpr < this.rocTpr![bucket]!) this.rocTpr![bucket] = tpr;
  }

  figures(): SegmentFigures {
    const m = this.withOutcome;
    const pos = this.positives;
    const both = pos > 0 && m > pos;
    const deciles = this.deciles();
    const ece = deciles === null ? NaN : expectedCalibrationError(deciles);
    const lift = deciles === null ? NaN : topBinLift(deciles);
    const pairs = this.np * this.nq - this.npq;
    return {
      band: this.band,
      customers: this.customers,
      withOutcome: m,
      positives: pos,
      auc: both ? (this.rankSum - (pos * (pos + 1)) / 2) / (pos * (m - pos)) : null,
      ks: both ? this.ks : null,
      brier: m > 0 ? this.brierSum / m : null,
      logLoss: m > 0 ? this.logLossSum / m : null,
      expectedPositiveRate: this.np / this.customers,
      estimatedAuc: pairs !== 0 ? (this.concordant - this.npq / 2) / pairs : null,
      deciles:
        deciles === null
          ? null
          : { customers: deciles.map((b) => b.customers), predicted: deciles.map((b) => b.predicted), observed: deciles.map((b) => b.observed) },
      ece: Number.isFinite(ece) ? ece : null,
      topDecileLift: Number.isFinite(lift) ? lift : null,
      roc: this.rocFpr !== undefined && both ? this.roc() : null,
    };
  }

  private deciles(): CalibrationBin[] | null {
    const bins: CalibrationBin[] = [];
    for (let d = 0; d < 10; d++) {
      const m = this.decileM[d]!;
      if (m > 0) bins.push({ customers: m, predicted: this.decileMp[d]! / m, observed: this.decilePos[d]! / m });
    }
    return bins.length > 0 ? bins : null;
  }

  private roc(): { fpr: number[]; tpr: number[] } {
    const points: [number, number][] = [];
    for (let k = 0; k <= rocPoints; k++) if (this.rocFpr![k] !== Infinity) points.push([this.rocFpr![k]!, this.rocTpr![k]!]);
    points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    return { fpr: points.map((x) => x[0]), tpr: points.map((x) => x[1]) };
  }
}
