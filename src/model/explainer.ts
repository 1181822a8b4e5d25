import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { UsageError } from '../errors.js';
import type { FeaturePlan } from './features.js';
import type { InputSlot } from './tensorTypes.js';
import { predictBatchRows, type OutputSelection } from './scorer.js';
import type { TfModel } from './tfModel.js';

/**
 * Per-row reasons: for each scored row, the `k` manifest features whose contribution to the score moved
 * it most from the baseline, with the signed contribution.
 *
 * Method: gradient × (input − baseline) on the transformed inputs, summed over a feature's inputs (a
 * one-hot group is one feature). It is the first-order Taylor term of f(x) − f(baseline) around x:
 * exact for a model that is linear in its inputs (a logistic regression, in the logit), an approximation
 * otherwise (it misses interactions and curvature between the baseline and the row).
 * - f: the log-odds `ln(p / (1 − p))` when the score's output layer is a sigmoid (its gradient is
 *   ∂p/∂x / (p(1 − p))), else the score itself. `space` says which.
 * - baseline: the transformed "average customer": 0 for a standardize feature (the training mean),
 *   `1/k` on each input of a one_hot feature of k categories, 0.5 for a boolean, 0 for a raw one.
 */
export interface Explainer {
  /** Reasons per row (at most the number of features: more is refused). */
  readonly k: number;
  /** Feature names (manifest `column`), indexed like the `feature` output. */
  readonly features: readonly string[];
  /** What a contribution is measured in. */
  readonly space: 'logit' | 'score';
  /**
   * Explains the first `rows` rows of `x` (row-major, model input). Rows whose score is not finite are
   * skipped (they become rejects), so output row j is the j-th row with a finite score. Writes `k`
   * entries per output row into `feature` (0-based feature index) and `contribution`, largest |c| first;
   * returns the number of output rows.
   */
  explain(x: Float32Array, rows: number, scores: Float32Array, out: ReasonBuffers): Promise<number>;
}

/** Where {@link Explainer.explain} writes: `k` per row. */
export interface ReasonBuffers {
  feature: Int16Array;
  contribution: Float32Array;
}

export function allocateReasons(k: number, rows: number): ReasonBuffers {
  return { feature: new Int16Array(k * rows), contribution: new Float32Array(k * rows) };
}

/** The method in one line, for the ledger and `runs show`. */
export const reasonsMethod =
  'gradient x (input - baseline) on the transformed inputs, summed per manifest feature; baseline: the training mean (standardize), 1/k per one-hot category, 0.5 per boolean, 0 raw';

/**
 * An {@link Explainer} over a loaded layers model. Refused (a one-line {@link UsageError}, exit 2) for a
 * model whose gradients TF.js cannot take (a graph model), an int32 input (index features), or `k` above
 * the number of features.
 */
export function createExplainer(
  model: TfModel,
  plan: FeaturePlan,
  slots: readonly InputSlot[],
  selection: OutputSelection,
  k: number,
  modelFile: string,
): Explainer {
  const apply = refuseUnexplainable(model, plan, slots, k, modelFile);
  const space = model.outputActivation?.(selection.output) === 'sigmoid' ? 'logit' : 'score';
  const baseline = new Float32Array(plan.width);
  const featureOf = new Int16Array(plan.width);
  plan.features.forEach((p, f) => {
    const b = p.feature.transform === 'one_hot' ? 1 / p.inputs : p.feature.transform === 'boolean' ? 0.5 : 0;
    for (let j = 0; j < p.inputs; j++) {
      baseline[p.offset + j] = b;
      featureOf[p.offset + j] = f;
    }
  });
  const nf = plan.features.length;
  const width = plan.width;
  // One gradient call returns ∂(Σ rows' score)/∂input: rows are independent in inference, so row r of it is row r's gradient.
  const grads = tf.grads((...inputs: tf.Tensor[]) => {
    let y = apply(inputs)[selection.output]!;
    if (selection.units > 1) y = tf.slice(y, [0, selection.unit], [-1, 1]);
    return tf.sum(y);
  });
  const contrib = new Float64Array(nf);
  return {
    k,
    features: plan.features.map((p) => p.feature.column),
    space,
    async explain(x, rows, scores, out) {
      let kept = 0;
      for (let from = 0; from < rows; from += predictBatchRows) {
        const n = Math.min(predictBatchRows, rows - from);
        const inputs = slots.map((s) => slotTensor(s, x, width, from, n));
        let gs: tf.Tensor[];
        try {
          gs = grads(inputs);
        } finally {
          for (const t of inputs) t.dispose();
        }
        const data = await Promise.all(gs.map((g) => g.data() as Promise<Float32Array>));
        for (const g of gs) g.dispose();
        for (let r = 0; r < n; r++) {
          const row = from + r;
          const p = scores[row]!;
          if (Number.isNaN(p - p)) continue; // a non-finite score is a reject: keepFiniteScores drops the row too
          contrib.fill(0);
          const base = row * width;
          for (let s = 0; s < slots.length; s++) {
            const cols = slots[s]!.columns;
            const g = data[s]!;
            const w = cols.length;
            for (let j = 0; j < w; j++) {
              const pos = cols[j]!;
              contrib[featureOf[pos]!]! += g[r * w + j]! * (x[base + pos]! - baseline[pos]!);
            }
          }
          // d logit/dx = (dp/dx) / (p (1 − p)); a saturated score (p(1 − p) = 0 in float32) has no usable gradient: all 0.
          const scale = space === 'logit' ? (p > 0 && p < 1 ? 1 / (p * (1 - p)) : 0) : 1;
          topK(contrib, nf, k, scale, out, kept * k);
          kept++;
        }
      }
      return kept;
    },
  };
}

/** The model's differentiable form, or the one-line refusal of `--reasons K` for it (see {@link createExplainer}). */
function refuseUnexplainable(
  model: TfModel,
  plan: FeaturePlan,
  slots: readonly InputSlot[],
  k: number,
  modelFile: string,
): (inputs: tf.Tensor[]) => tf.Tensor[] {
  const apply = model.differentiable;
  if (model.format !== 'layers-model' || apply === undefined) {
    throw new UsageError(
      `--reasons needs gradients, which TF.js cannot take through the graph model ${modelFile}; convert the model as a layers model, or run without --reasons`,
    );
  }
  const intSlot = slots.find((s) => s.dtype === 'int32');
  // An id is a label, not a quantity: a gradient with respect to it means nothing, and attributing on the
  // Embedding's output would need a baseline vector that training never defined (docs/analysts.md "Reasons per score").
  if (intSlot) {
    throw new UsageError(
      `--reasons needs gradients, and the model input "${intSlot.name}" of ${modelFile} is int32 (index features are ids, with no gradient); run without --reasons, or use a model fed one_hot features`,
    );
  }
  if (k > plan.features.length) {
    const manifestFile = path.join(path.dirname(modelFile), 'manifest.json');
    throw new UsageError(
      `--reasons ${k}: the model's manifest (${manifestFile}) has ${plan.features.length} features; give --reasons 1 to ${plan.features.length}`,
    );
  }
  return apply;
}

/** Writes the `k` entries of `c` with the largest |c| (largest first), times `scale`, at `at`. Small k: a selection per slot. */
function topK(c: Float64Array, n: number, k: number, scale: number, out: ReasonBuffers, at: number): void {
  let taken = 0;
  for (let slot = 0; slot < k; slot++) {
    let best = -1;
    let bestAbs = -1;
    for (let f = 0; f < n; f++) {
      if ((taken & (1 << f)) !== 0 && f < 31) continue;
      const a = Math.abs(c[f]!);
      if (a > bestAbs && !alreadyTaken(out, at, slot, f, n)) {
        best = f;
        bestAbs = a;
      }
    }
    if (best < 31) taken |= 1 << best;
    out.feature[at + slot] = best;
    out.contribution[at + slot] = c[best]! * scale;
  }
}

/** For models of more than 31 features, where the bit mask cannot say: look at what this row took. */
function alreadyTaken(out: ReasonBuffers, at: number, slots: number, f: number, n: number): boolean {
  if (n <= 31 || f < 31) return false;
  for (let s = 0; s < slots; s++) if (out.feature[at + s] === f) return true;
  return false;
}

function slotTensor(s: InputSlot, x: Float32Array, width: number, from: number, n: number): tf.Tensor {
  if (s.whole) {
    const v = x.subarray(from * width, (from + n) * width);
    return s.rank === 1 ? tf.tensor1d(v) : tf.tensor2d(v, [n, width]);
  }
  const k = s.columns.length;
  const v = new Float32Array(n * k);
  for (let r = 0; r < n; r++) for (let j = 0; j < k; j++) v[r * k + j] = x[(from + r) * width + s.columns[j]!]!;
  return s.rank === 1 ? tf.tensor1d(v) : tf.tensor2d(v, [n, k]);
}
