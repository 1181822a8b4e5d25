import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';

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

/** A {@link Scorer} over a loaded TF.js layers model with a single `[rows, inputWidth]` input. */
export function createTfScorer(model: LayersModel, inputWidth: number, selection: OutputSelection): Scorer {
  let disposed = false;
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
        // The tensor is returned from tidy and read outside it, once: reading inside tidy (dataSync) costs a third of the speed.
        const y = tf.tidy(() => {
          // subarray: no copy on the JS side (the cpu backend keeps a reference, wasm copies into its heap once).
          const input = tf.tensor2d(x.subarray(from * inputWidth, (from + n) * inputWidth), [n, inputWidth], 'float32');
          // batchSize = n: one pass through the layers; the default (32) is ~36x slower.
          const out = model.predict(input, { batchSize: n });
          return Array.isArray(out) ? out[selection.output]! : out;
        });
        try {
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
