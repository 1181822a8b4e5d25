import type { ColumnBatch, ColumnSpec, RawColumn } from '../columns.js';
import type { KeyBytes } from '../keyColumn.js';
import { nullId, unknownId, type Feature, type Manifest } from './manifest.js';
import type { FeatureCounters } from '../stats/featureStats.js';
import { countFeatures } from './featureCounters.js';

export { addFeatureCounters, createFeatureCounters } from './featureCounters.js';

/**
 * The manifest's features compiled for the hot path: which source columns to read (and how the COPY
 * reader casts them), where each feature's inputs sit in a model input row, and the constants of each
 * transform.
 */
export interface FeaturePlan {
  /** Model inputs per row: one per standardize, boolean, raw or index feature, one per category of a one_hot feature. */
  readonly width: number;
  /** One per feature, in manifest order (= the order of `ColumnBatch.columns`). */
  readonly columns: readonly ColumnSpec[];
  readonly features: readonly PlannedFeature[];
}

/** One feature with its place in the input row. */
export interface PlannedFeature {
  readonly feature: Feature;
  /** Index of its first input in a row. */
  readonly offset: number;
  /** Number of inputs it produces. */
  readonly inputs: number;
}

/** A row the model cannot score: it goes to score_rejects. */
export interface Reject {
  /** An int8 key; for uuid and text keys its row's position in the chunk's key bytes, then the key as text (src/keyColumn.ts). */
  key: bigint | string;
  reason: RejectReason;
  /** The first feature column (in manifest order) that made the row unscorable; null for a `non_finite_score`. */
  column: string | null;
  /** The offending value as text; null for a NULL. */
  value: string | null;
}

/** uuid and text keys: a reject holds its row's position in the chunk's key bytes until named here (rejects are few: a string each). */
export function nameRejectKeys(rejects: Reject[], keyBytes: KeyBytes): void {
  for (const r of rejects) if (typeof r.key === 'bigint') r.key = keyBytes.text(Number(r.key));
}

/**
 * `null_without_fill`: a NULL in a feature whose manifest entry has no `fill`.
 * `non_finite`: a standardize column whose model input is NaN or ±Infinity: numeric 'NaN'/'Infinity', a float
 * column's NaN/±Infinity, or a finite value that overflows float32 once standardized (1e300, numeric 1e45).
 * `non_finite_score`: the model's output for the row is NaN or ±Infinity (see `keepFiniteScores`).
 */
export type RejectReason = 'null_without_fill' | 'non_finite' | 'non_finite_score';

/** Where {@link transformBatch} writes: model input rows and the key of each. */
export interface ModelInput {
  /** Row-major, `width` floats per row; at least `capacity * width` long. */
  x: Float32Array;
  keys: BigInt64Array;
}

/** Compiles a validated manifest's features. */
export function compileFeatures(manifest: Pick<Manifest, 'features'>): FeaturePlan {
  let offset = 0;
  const features = manifest.features.map((feature): PlannedFeature => {
    const inputs = feature.transform === 'one_hot' ? feature.categories.length : 1;
    const planned = { feature, offset, inputs };
    offset += inputs;
    return planned;
  });
  const columns = manifest.features.map((f): ColumnSpec => {
    switch (f.transform) {
      case 'standardize':
      case 'raw':
        return { name: f.column, kind: 'float8' };
      case 'boolean':
        return { name: f.column, kind: 'bool' };
      case 'one_hot':
      case 'index':
        return { name: f.column, kind: 'category', categories: f.categories };
    }
  });
  return Object.freeze({ width: offset, columns: Object.freeze(columns), features: Object.freeze(features) });
}

/**
 * Allocates model input for `capacity` rows.
 * @internal exported for tests
 */
export function allocateModelInput(plan: FeaturePlan, capacity: number): ModelInput {
  return { x: new Float32Array(capacity * plan.width), keys: new BigInt64Array(capacity) };
}

/** Rows per block of {@link transformBatch}: 1024 rows of a few dozen inputs fit in a core's L2 cache. */
const rowBlock = 1024;

// Scratch reused across calls (the transform is synchronous, so one per thread is enough); grows to the largest batch.
let rejected = new Uint8Array(0);
/** Where row r's inputs go: its accepted position, or -1 for a rejected row (the identity when none is rejected). */
let target = new Int32Array(0);

/**
 * Turns a decoded batch into model input rows, compacting away rows that cannot be scored: accepted row
 * j is `out.x[j*width .. (j+1)*width)` with key `out.keys[j]`. Each rejected row is appended to
 * `rejects` once, with its first offending column. Returns the number of accepted rows.
 *
 * The per-row loops live in small functions that take typed arrays and numbers only, called once per
 * block of rows: each sees one array type per argument and is called often, so V8 optimizes it as a
 * function and keeps it optimized. (A loop over `column.values` of varying column kinds deoptimized on
 * every chunk; a whole-chunk loop ran interpreted until on-stack replacement, boxing every number.)
 */
export function transformBatch(batch: ColumnBatch, plan: FeaturePlan, out: ModelInput, rejects: Reject[], counters?: FeatureCounters): number {
  const rows = batch.rows;
  checkShapes(batch, plan, out);
  if (rejected.length < rows) {
    rejected = new Uint8Array(batch.capacity);
    target = new Int32Array(batch.capacity);
  }
  rejected.fill(0, 0, rows);
  let anyRejected = 0;
  for (let from = 0; from < rows; from += rowBlock) {
    const to = Math.min(rows, from + rowBlock);
    for (let f = 0; f < plan.features.length; f++) {
      const column = batch.columns[f]!;
      if (plan.features[f]!.feature.fill === undefined) anyRejected |= markNulls(column.nulls, rejected, from, to);
      const feature = plan.features[f]!.feature;
      if (column.kind === 'float8' && feature.transform === 'standardize') {
        anyRejected |= markNonFinite(column.values, column.nulls, feature.mean, feature.std, rejected, from, to);
      } else if (column.kind === 'float8' && feature.transform === 'raw') {
        // raw is standardize with mean 0 and std 1: (v - 0) / 1 is v exactly.
        anyRejected |= markNonFinite(column.values, column.nulls, 0, 1, rejected, from, to);
      }
    }
  }
  let accepted = rows;
  if (anyRejected === 0) {
    out.keys.set(batch.keys.subarray(0, rows));
    for (let from = 0; from < rows; from += rowBlock) identity(target, from, Math.min(rows, from + rowBlock));
  } else {
    // Keys move as pairs of 32-bit halves: reading a BigInt64Array element would allocate a BigInt per row.
    const keys = new Int32Array(batch.keys.buffer, batch.keys.byteOffset, rows * 2);
    const outKeys = new Int32Array(out.keys.buffer, out.keys.byteOffset, rows * 2);
    accepted = 0;
    for (let from = 0; from < rows; from += rowBlock) accepted = compactKeys(keys, outKeys, rejected, target, from, Math.min(rows, from + rowBlock), accepted);
    for (let r = 0; r < rows; r++) if (rejected[r] !== 0) rejects.push(describeReject(batch, plan, r));
  }
  // Feature by feature within blocks of rows: a block of model input rows stays in cache while every feature writes into it.
  for (let from = 0; from < rows; from += rowBlock) {
    const to = Math.min(rows, from + rowBlock);
    for (let f = 0; f < plan.features.length; f++) writeFeature(batch.columns[f]!, plan.features[f]!, plan.width, from, to, out.x);
  }
  if (counters !== undefined) countFeatures(batch, plan, counters);
  return accepted;
}

function checkShapes(batch: ColumnBatch, plan: FeaturePlan, out: ModelInput): void {
  if (batch.columns.length !== plan.features.length) {
    throw new Error(`batch has ${batch.columns.length} columns, the feature plan ${plan.features.length}`);
  }
  plan.columns.forEach((spec, f) => {
    const column = batch.columns[f]!;
    if (column.kind !== spec.kind || column.name !== spec.name) {
      throw new Error(`batch column ${f} is ${column.name} (${column.kind}), the feature plan expects ${spec.name} (${spec.kind})`);
    }
  });
  if (out.x.length < batch.rows * plan.width || out.keys.length < batch.rows) {
    throw new Error(`model input holds ${out.keys.length} rows of ${plan.width}, the batch has ${batch.rows} rows`);
  }
}

/** Marks rows whose value is NULL; returns 1 if it marked any. */
function markNulls(nulls: Uint8Array, marks: Uint8Array, from: number, to: number): number {
  let any = 0;
  for (let r = from; r < to; r++) {
    const n = nulls[r]!;
    marks[r]! |= n;
    any |= n;
  }
  return any;
}

/**
 * Marks rows whose (non-NULL) value gives the model a NaN or ±Infinity input: NaN and ±Infinity in the
 * source, and finite doubles whose input overflows float32 (1e300, numeric 1e45; or a value that a small
 * std scales past 3.4e38). The check is on the value the model receives, computed exactly as
 * {@link standardize} writes it; returns 1 if it marked any.
 */
function markNonFinite(values: Float64Array, nulls: Uint8Array, mean: number, std: number, marks: Uint8Array, from: number, to: number): number {
  let any = 0;
  for (let r = from; r < to; r++) {
    // Math.fround narrows like the Float32Array store does (no allocation); v - v is NaN exactly for NaN and ±Infinity.
    const input = Math.fround((values[r]! - mean) / std);
    const bad = nulls[r] === 0 && Number.isNaN(input - input) ? 1 : 0;
    marks[r]! |= bad;
    any |= bad;
  }
  return any;
}

/** The float32 input the model gets for a standardize value (see {@link markNonFinite}). */
function standardizedInput(value: number, mean: number, std: number): number {
  return Math.fround((value - mean) / std);
}

function identity(into: Int32Array, from: number, to: number): void {
  for (let r = from; r < to; r++) into[r] = r;
}

/**
 * Copies the keys of unmarked rows from..to-1 after the `accepted` already copied (as 32-bit halves) and
 * sets `into` (row -> position, or -1); returns the new count.
 */
function compactKeys(keys: Int32Array, out: Int32Array, marks: Uint8Array, into: Int32Array, from: number, to: number, accepted: number): number {
  for (let r = from; r < to; r++) {
    if (marks[r] === 0) {
      into[r] = accepted;
      out[accepted * 2] = keys[r * 2]!;
      out[accepted * 2 + 1] = keys[r * 2 + 1]!;
      accepted++;
    } else {
      into[r] = -1;
    }
  }
  return accepted;
}

function rawOrStandardized(value: number, feature: Feature): number {
  return feature.transform === 'standardize' ? standardizedInput(value, feature.mean, feature.std) : standardizedInput(value, 0, 1);
}

function describeReject(batch: ColumnBatch, plan: FeaturePlan, r: number): Reject {
  for (let f = 0; f < plan.features.length; f++) {
    const column = batch.columns[f]!;
    const feature = plan.features[f]!.feature;
    if (column.nulls[r] === 1) {
      if (feature.fill === undefined) return { key: batch.keys[r]!, reason: 'null_without_fill', column: column.name, value: null };
    } else if (
      column.kind === 'float8' &&
      (feature.transform === 'standardize' || feature.transform === 'raw') &&
      !Number.isFinite(rawOrStandardized(column.values[r]!, feature))
    ) {
      return { key: batch.keys[r]!, reason: 'non_finite', column: column.name, value: String(column.values[r]) };
    }
  }
  throw new Error(`row ${r} was marked rejected without a cause`);
}

/** Writes one feature's inputs of rows from..to-1 (row r to position target[r]; rejected rows are skipped). */
function writeFeature(column: RawColumn, planned: PlannedFeature, width: number, from: number, to: number, x: Float32Array): void {
  const { feature, offset } = planned;
  if (column.kind === 'float8' && feature.transform === 'standardize') {
    standardize(column.values, column.nulls, feature.fill ?? 0, feature.mean, feature.std, x, width, offset, target, from, to);
  } else if (column.kind === 'float8' && feature.transform === 'raw') {
    standardize(column.values, column.nulls, feature.fill ?? 0, 0, 1, x, width, offset, target, from, to);
  } else if (column.kind === 'category' && feature.transform === 'index') {
    // A NULL without fill never reaches here (the row was rejected); 0 only keeps the argument a number.
    indices(column.codes, column.nulls, nullId(feature) ?? 0, unknownId(feature), x, width, offset, target, from, to);
  } else if (column.kind === 'bool' && feature.transform === 'boolean') {
    booleans(column.values, column.nulls, feature.fill === true ? 1 : 0, x, width, offset, target, from, to);
  } else if (column.kind === 'category' && feature.transform === 'one_hot') {
    const fill = feature.fill === undefined ? -1 : feature.categories.indexOf(feature.fill);
    oneHot(column.codes, column.nulls, fill, planned.inputs, x, width, offset, target, from, to);
  } else {
    throw new Error(`column ${column.name} is ${column.kind}, feature transform is ${feature.transform}`);
  }
}

function standardize(
  values: Float64Array,
  nulls: Uint8Array,
  fill: number,
  mean: number,
  std: number,
  x: Float32Array,
  width: number,
  offset: number,
  at: Int32Array,
  from: number,
  to: number,
): void {
  // The fill's input computed once, as a double: choosing between the `fill` argument and values[r] inside
  // the loop made V8 box every value (an allocation per value).
  const filled = (fill - mean) / std;
  for (let r = from; r < to; r++) {
    const t = at[r]!;
    if (t >= 0) x[t * width + offset] = nulls[r] === 1 ? filled : (values[r]! - mean) / std;
  }
}

function booleans(
  values: Uint8Array,
  nulls: Uint8Array,
  fill: number,
  x: Float32Array,
  width: number,
  offset: number,
  at: Int32Array,
  from: number,
  to: number,
): void {
  for (let r = from; r < to; r++) {
    const t = at[r]!;
    if (t >= 0) x[t * width + offset] = nulls[r] === 1 ? fill : values[r] !== 0 ? 1 : 0;
  }
}

/** k inputs per row, all 0 but the category's (an unknown category, code -1, is all zeros). */
function oneHot(
  codes: Int32Array,
  nulls: Uint8Array,
  fill: number,
  k: number,
  x: Float32Array,
  width: number,
  offset: number,
  at: Int32Array,
  from: number,
  to: number,
): void {
  for (let r = from; r < to; r++) {
    const t = at[r]!;
    if (t < 0) continue;
    const base = t * width + offset;
    for (let j = 0; j < k; j++) x[base + j] = 0; // k is small: a loop beats a fill() call per row
    const code = nulls[r] === 1 ? fill : codes[r]!;
    if (code >= 0 && code < k) x[base + code] = 1;
  }
}

/** One input per row: the category's position, `unknown` for code -1, `fill` for a NULL. */
function indices(
  codes: Int32Array,
  nulls: Uint8Array,
  fill: number,
  unknown: number,
  x: Float32Array,
  width: number,
  offset: number,
  at: Int32Array,
  from: number,
  to: number,
): void {
  for (let r = from; r < to; r++) {
    const t = at[r]!;
    if (t < 0) continue;
    const code = codes[r]!;
    x[t * width + offset] = nulls[r] === 1 ? fill : code < 0 ? unknown : code;
  }
}
