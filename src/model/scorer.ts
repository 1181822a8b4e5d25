import * as tf from '@tensorflow/tfjs-core';
import type { Reject } from './features.js';
import type { InputSlot } from './tensorTypes.js';
import type { TfModel } from './tfModel.js';

/**
 * What the chunk loop needs from a model: rows of inputs in, one score per row out. The loop depends on
 * this and nothing of TF.js.
 */
export interface Scorer {
  /** Floats per input row. */
  readonly inputWidth: number;
  /**
   * Scores the first `rows` rows of `x` (row-major, `inputWidth` floats each; `x` may be longer).
   * The result is a new array of `rows` scores, owned by the caller.
   */
  score(x: Float32Array, rows: number): Promise<Float32Array>;
  /** Frees the model's weights. */
  dispose(): void;
}

/** Which output tensor and which of its units (columns) is the score. */
export interface OutputSelection {
  output: number;
  unit: number;
  /** Units of that output tensor (its last dimension). */
  units: number;
}

/**
 * Rows per predict call. Large enough that per-call overhead vanishes, small enough that the layers'
 * activations stay in cache and the backend's memory (WebAssembly memory only grows) does not scale
 * with the chunk size: on wasm, 8192-row calls score 1M rows in ~95 ms where one 50000-row call
 * per chunk takes ~115 ms and grows the heap by ~15 MB more.
 */
export const predictBatchRows = 8192;

/**
 * A {@link Scorer} over a loaded TF.js model (layers or graph, one input or several). Each row of `x`
 * is split into the model's inputs as `slots` say (int32 where the input is int32).
 */
export function createTfScorer(model: TfModel, inputWidth: number, slots: readonly InputSlot[], selection: OutputSelection): Scorer {
  let disposed = false;
  // Per-input buffers for one predict call, reused call after call (STYLE.md §6); a whole-row float32 input needs none.
  const buffers = slots.map((s) =>
    s.whole ? undefined : s.dtype === 'int32' ? new Int32Array(predictBatchRows * s.width) : new Float32Array(predictBatchRows * s.width),
  );
  return {
    inputWidth,
    async score(x, rows) {
      if (disposed) throw new Error('scorer used after dispose()');
      if (!Number.isInteger(rows) || rows < 0 || x.length < rows * inputWidth) {
        throw new Error(`cannot score ${rows} rows of ${inputWidth} from ${x.length} floats`);
      }
      const scores = new Float32Array(rows);
      for (let from = 0; from < rows; from += predictBatchRows) {
        const n = Math.min(predictBatchRows, rows - from);
        const inputs = slots.map((s, i) => inputTensor(s, buffers[i], x, inputWidth, from, n));
        let y: tf.Tensor;
        try {
          [y] = (await model.run(inputs, [selection.output])) as [tf.Tensor];
        } finally {
          for (const t of inputs) t.dispose();
        }
        try {
          // Read once, outside any tidy: reading inside tidy (dataSync) costs a third of the speed.
          const data = (await y.data()) as Float32Array;
          if (selection.units === 1) scores.set(data.subarray(0, n), from);
          else for (let r = 0, i = selection.unit; r < n; r++, i += selection.units) scores[from + r] = data[i]!;
        } finally {
          y.dispose();
        }
      }
      return scores;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      model.dispose();
    },
  };
}

/** Rows from..from+n-1 of one model input, as a tensor the caller disposes. */
function inputTensor(s: InputSlot, buffer: Float32Array | Int32Array | undefined, x: Float32Array, width: number, from: number, n: number): tf.Tensor {
  let values: Float32Array | Int32Array;
  if (buffer === undefined) {
    // subarray: no copy on the JS side (the cpu backend keeps a reference, wasm copies into its heap once).
    values = x.subarray(from * width, (from + n) * width);
  } else {
    gather(x, width, from, n, s.columns, buffer);
    values = buffer.subarray(0, n * s.width);
  }
  return s.rank === 1 ? tf.tensor1d(values, s.dtype) : tf.tensor2d(values, [n, s.width], s.dtype);
}

/** Copies the slot's columns of rows from..from+n-1 into `into` (an Int32Array store truncates exact integer floats exactly). */
function gather(x: Float32Array, width: number, from: number, n: number, columns: Int32Array, into: Float32Array | Int32Array): void {
  const k = columns.length;
  for (let r = 0; r < n; r++) {
    const base = (from + r) * width;
    for (let j = 0; j < k; j++) into[r * k + j] = x[base + columns[j]!]!;
  }
}

/**
 * Takes the rows whose score is NaN or ±Infinity out of a scored batch: each becomes a
 * `non_finite_score` reject (with its key and the value), and the other rows are compacted in place so
 * that `keys[j]` and `scores[j]` stay aligned. Returns the number of rows kept. A non-finite score is
 * never published: a model whose weights hold a NaN scores every row NaN, and it is the reject gate that
 * must notice, not the readers.
 */
export function keepFiniteScores(keys: BigInt64Array, scores: Float32Array, rows: number, rejects: Reject[]): number {
  // The common case is one branch-free pass over the scores, no allocation: this runs once per scored row.
  if (countNonFinite(scores, rows) === 0) return rows;
  // Keys move as 32-bit halves: reading a BigInt64Array element allocates a BigInt (only done for the rejects).
  const halves = new Int32Array(keys.buffer, keys.byteOffset, rows * 2);
  let kept = 0;
  for (let r = 0; r < rows; r++) {
    const s = scores[r]!;
    if (Number.isNaN(s - s)) {
      rejects.push({ key: keys[r]!, reason: 'non_finite_score', column: null, value: String(s) });
      continue;
    }
    scores[kept] = s;
    halves[kept * 2] = halves[r * 2]!;
    halves[kept * 2 + 1] = halves[r * 2 + 1]!;
    kept++;
  }
  return kept;
}

function countNonFinite(scores: Float32Array, rows: number): number {
  let n = 0;
  for (let r = 0; r < rows; r++) {
    const s = scores[r]!;
    n += Number.isNaN(s - s) ? 1 : 0;
  }
  return n;
}
