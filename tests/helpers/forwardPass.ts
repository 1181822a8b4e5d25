/**
 * A forward pass in plain JavaScript (no TF.js): the weights read byte by byte from a model directory's
 * shards as model.json's weightsManifest lists them, and dense layers as row-by-matrix products. Tests
 * compare scorejob's published scores with it, so an error in loading, input splitting or output
 * selection cannot cancel out against the same error in a TF.js reference.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Weight {
  shape: number[];
  data: Float32Array;
}

/** Every float32 weight of the model, by its name in weightsManifest (bool constants and int32 counters are skipped). */
export async function readWeights(dir: string): Promise<Map<string, Weight>> {
  const modelJson = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as {
    weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[];
  };
  const out = new Map<string, Weight>();
  for (const group of modelJson.weightsManifest) {
    const bytes = Buffer.concat(await Promise.all(group.paths.map((p) => readFile(join(dir, p)))));
    let offset = 0;
    for (const spec of group.weights) {
      const n = spec.shape.reduce((a, b) => a * b, 1);
      if (spec.dtype === 'bool') {
        offset += n; // a control-flow predicate: one byte each, not a weight of the arithmetic
        continue;
      }
      if (spec.dtype === 'int32') {
        offset += n * 4; // a counter (Keras's Normalization `count`), not a weight of the arithmetic
        continue;
      }
      if (spec.dtype !== 'float32') throw new Error(`${spec.name} is ${spec.dtype}; the reference reads float32, int32 and bool only`);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = bytes.readFloatLE(offset + i * 4);
      offset += n * 4;
      out.set(spec.name, { shape: spec.shape, data });
    }
  }
  return out;
}

export function weight(weights: Map<string, Weight>, name: string): Weight {
  const w = weights.get(name);
  if (w === undefined) throw new Error(`no weight ${name} (have ${[...weights.keys()].join(', ')})`);
  return w;
}

/** x (length in) times kernel ([in, out], row-major) plus bias. */
export function dense(x: readonly number[], kernel: Weight, bias: Weight): number[] {
  const [inputs, units] = kernel.shape as [number, number];
  if (x.length !== inputs) throw new Error(`dense: ${x.length} inputs, kernel has ${inputs}`);
  const y: number[] = [];
  for (let j = 0; j < units; j++) {
    let s = bias.data[j]!;
    for (let i = 0; i < inputs; i++) s += x[i]! * kernel.data[i * units + j]!;
    y.push(s);
  }
  return y;
}

export const relu = (v: number[]): number[] => v.map((x) => Math.max(0, x));
export const sigmoid = (v: number[]): number[] => v.map((x) => 1 / (1 + Math.exp(-x)));

/** Row `id` of an embedding matrix ([ids, dims]). */
export function embedding(table: Weight, id: number): number[] {
  const [ids, dims] = table.shape as [number, number];
  if (!Number.isInteger(id) || id < 0 || id >= ids) throw new Error(`embedding id ${id} outside 0..${ids - 1}`);
  return Array.from(table.data.subarray(id * dims, (id + 1) * dims));
}

/** Keras's Normalization: (x - mean) / max(sqrt(variance), 1e-7), per input. */
export function normalize(x: readonly number[], mean: readonly number[], variance: readonly number[]): number[] {
  return x.map((v, i) => (v - mean[i]!) / Math.max(Math.sqrt(variance[i]!), 1e-7));
}

/** BatchNormalization at inference: gamma (x - moving_mean) / sqrt(moving_variance + epsilon) + beta. */
export function batchNorm(x: readonly number[], w: { gamma: Weight; beta: Weight; mean: Weight; variance: Weight }, epsilon: number): number[] {
  return x.map((v, i) => (w.gamma.data[i]! * (v - w.mean.data[i]!)) / Math.sqrt(w.variance.data[i]! + epsilon) + w.beta.data[i]!);
}
