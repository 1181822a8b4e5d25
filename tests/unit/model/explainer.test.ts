import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { uniform, writeGraphModel } from '../../../scripts/fixtures/byoModels.js';
import { UsageError } from '../../../src/errors.js';
import { allocateReasons, createExplainer } from '../../../src/model/explainer.js';
import type { FeaturePlan } from '../../../src/model/features.js';
import { loadModel, type LoadedModel } from '../../../src/model/load.js';
import { selectBackend } from '../../../src/model/backend.js';
import { makeModel } from '../../helpers/makeModel.js';
import { shippedModelDir } from '../../helpers/run.js';

const logit = (p: number) => Math.log(p / (1 - p));

/** Plausible transformed rows: standardized numbers, one category per one-hot group, 0/1 booleans. */
function sampleRows(plan: FeaturePlan, rows: number, seed: number): Float32Array {
  const next = uniform(seed, 1);
  const x = new Float32Array(rows * plan.width);
  for (let r = 0; r < rows; r++) {
    for (const p of plan.features) {
      const at = r * plan.width + p.offset;
      const u = (next() + 1) / 2; // 0..1
      if (p.feature.transform === 'one_hot') x[at + Math.min(p.inputs - 1, Math.floor(u * p.inputs))] = 1;
      else if (p.feature.transform === 'boolean') x[at] = u < 0.5 ? 1 : 0;
      else x[at] = next() * 2;
    }
  }
  return x;
}

function explainerOf(model: LoadedModel, k: number) {
  return createExplainer(model.tfModel, model.plan, model.inputs, model.output, k, join(model.dir, 'model.json'));
}

describe('reasons per score (gradient x (input - baseline))', () => {
  it('a logistic regression: each contribution is exactly w_i (x_i - baseline_i) in the logit, summed over a one-hot group', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'sj-lr-')), 'm');
    await selectBackend('cpu');
    const made = await makeModel(dir, { hidden: [] });
    const kernel = (await made.model.getWeights()[0]!.data()) as Float32Array;
    made.model.dispose();
    const model = await loadModel(dir, { backend: 'cpu' });
    try {
      const explainer = explainerOf(model, 3);
      expect(explainer.space).toBe('logit');
      expect(explainer.k).toBe(3);
      const rows = 500;
      const x = sampleRows(model.plan, rows, 5);
      const scores = await model.scorer.score(x, rows);
      const out = allocateReasons(3, rows);
      const before = tf.memory().numTensors;
      expect(await explainer.explain(x, rows, scores, out)).toBe(rows);
      expect(tf.memory().numTensors).toBe(before);
      let worst = 0;
      for (let r = 0; r < rows; r++) {
        const want = model.plan.features.map((p) => {
          let c = 0;
          const b = p.feature.transform === 'one_hot' ? 1 / p.inputs : p.feature.transform === 'boolean' ? 0.5 : 0;
          for (let j = p.offset; j < p.offset + p.inputs; j++) c += kernel[j]! * (x[r * model.plan.width + j]! - b);
          return c;
        });
        const order = want.map((c, f) => [f, c] as const).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
        for (let i = 0; i < 3; i++) {
          expect(out.feature[r * 3 + i]).toBe(order[i]![0]);
          worst = Math.max(worst, Math.abs(out.contribution[r * 3 + i]! - order[i]![1]));
        }
      }
      expect(worst).toBeLessThan(1e-3);
    } finally {
      model.dispose();
    }
  });

  it('the shipped model: contributions and their order agree with a finite-difference estimate of the logit gradient on a sample', async () => {
    const model = await loadModel(shippedModelDir, { backend: 'cpu' });
    try {
      const { plan } = model;
      const k = plan.features.length;
      const explainer = explainerOf(model, k);
      const rows = 100;
      const x = sampleRows(plan, rows, 9);
      const scores = await model.scorer.score(x, rows);
      const out = allocateReasons(k, rows);
      await explainer.explain(x, rows, scores, out);
      // Central differences of the logit, one input at a time: 2 * width rows per sample row.
      const h = 1e-3;
      const w = plan.width;
      const probes = new Float32Array(rows * 2 * w * w);
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < w; j++) {
          for (let s = 0; s < 2; s++) {
            const at = ((r * w + j) * 2 + s) * w;
            probes.set(x.subarray(r * w, (r + 1) * w), at);
            probes[at + j]! += s === 0 ? h : -h;
          }
        }
      }
      const f = await model.scorer.score(probes, rows * 2 * w);
      let topAgree = 0;
      let close = 0;
      for (let r = 0; r < rows; r++) {
        const fd = new Float64Array(k);
        plan.features.forEach((p, fi) => {
          const b = p.feature.transform === 'one_hot' ? 1 / p.inputs : p.feature.transform === 'boolean' ? 0.5 : 0;
          for (let j = p.offset; j < p.offset + p.inputs; j++) {
            const g = (logit(f[(r * w + j) * 2]!) - logit(f[(r * w + j) * 2 + 1]!)) / (2 * h);
            fd[fi]! += g * (x[r * w + j]! - b);
          }
        });
        const got = new Float64Array(k);
        for (let i = 0; i < k; i++) got[out.feature[r * k + i]!] = out.contribution[r * k + i]!;
        let rowWorst = 0;
        for (let fi = 0; fi < k; fi++) rowWorst = Math.max(rowWorst, Math.abs(got[fi]! - fd[fi]!));
        if (rowWorst < 0.02) close++;
        const fdTop = fd.reduce((best, c, fi) => (Math.abs(c) > Math.abs(fd[best]!) ? fi : best), 0);
        if (fdTop === out.feature[r * k]) topAgree++;
        // Largest |contribution| first.
        for (let i = 1; i < k; i++) expect(Math.abs(out.contribution[r * k + i - 1]!)).toBeGreaterThanOrEqual(Math.abs(out.contribution[r * k + i]!));
      }
      // A ReLU kink between x - h and x + h makes a difference quotient differ from the gradient: rare at this h.
      expect(close).toBeGreaterThanOrEqual(rows * 0.97);
      expect(topAgree).toBeGreaterThanOrEqual(rows * 0.97);
    } finally {
      model.dispose();
    }
  });

  it('skips rows whose score is not finite, as keepFiniteScores does', async () => {
    const model = await loadModel(shippedModelDir, { backend: 'cpu' });
    try {
      const explainer = explainerOf(model, 2);
      const x = sampleRows(model.plan, 4, 3);
      const scores = await model.scorer.score(x, 4);
      const all = allocateReasons(2, 4);
      await explainer.explain(x, 4, scores, all);
      scores[1] = Number.NaN;
      const some = allocateReasons(2, 4);
      expect(await explainer.explain(x, 4, scores, some)).toBe(3);
      expect(Array.from(some.feature.subarray(0, 6))).toEqual([...all.feature.subarray(0, 2), ...all.feature.subarray(4, 8)]);
    } finally {
      model.dispose();
    }
  });

  it('a graph model is refused with one line (exit 2): TF.js takes no gradients through it', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'sj-graph-')), 'm');
    await writeGraphModel(dir, {});
    const model = await loadModel(dir, { backend: 'cpu' });
    try {
      let err: unknown;
      try {
        explainerOf(model, 3);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).exitCode).toBe(2);
      expect((err as Error).message).toMatch(/^--reasons needs gradients, which TF\.js cannot take through the graph model .*model\.json; .*$/);
    } finally {
      model.dispose();
    }
  });
});
