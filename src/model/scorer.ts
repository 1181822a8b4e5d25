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
      if (rows === 0) return new Float32Array(0);
      // The tensor is returned from tidy and read outside it, once: reading inside tidy (dataSync) costs a third of the speed.
      const y = tf.tidy(() => {
        // subarray: no copy on the JS side (the cpu backend keeps a reference, wasm copies into its heap once).
        const input = tf.tensor2d(x.subarray(0, rows * inputWidth), [rows, inputWidth], 'float32');
        // batchSize = rows: one pass through the layers; the default (32) is ~36x slower.
        const out = model.predict(input, { batchSize: rows });
        return Array.isArray(out) ? out[selection.output]! : out;
      });
      try {
        const data = (await y.data()) as Float32Array;
        return selection.units === 1 ? data : column(data, rows, selection.units, selection.unit);
      } finally {
        y.dispose();
      }
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      model.dispose();
    },
  };
}

/** Column `unit` of a row-major `[rows, units]` matrix. */
function column(data: Float32Array, rows: number, units: number, unit: number): Float32Array {
  const scores = new Float32Array(rows);
  for (let r = 0, i = unit; r < rows; r++, i += units) scores[r] = data[i]!;
  return scores;
}
