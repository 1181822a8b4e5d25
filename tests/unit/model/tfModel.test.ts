import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { graphSizes, uniform, writeGraphModel } from '../../../scripts/fixtures/byoModels.js';
import { loadModel } from '../../../src/model/load.js';
import { dense, readWeights, relu, sigmoid, weight } from '../../helpers/forwardPass.js';

/** The graph fixture scored by loadModel's scorer, against a forward pass in plain JavaScript. */
describe('graph models', () => {
  async function check(opts: { controlFlow?: boolean }, backend: 'cpu' | 'wasm') {
    const dir = join(await mkdtemp(join(tmpdir(), 'sj-graph-')), 'm');
    await writeGraphModel(dir, opts);
    const model = await loadModel(dir, { backend });
    try {
      expect(model.format).toBe('graph-model');
      expect(model.outputName).toBe('churn');
      expect(model.execution).toBe(opts.controlFlow ? 'executeAsync' : 'execute');
      const rows = 300;
      const next = uniform(3, 2);
      const x = Float32Array.from({ length: rows * graphSizes.inputs }, next);
      const before = tf.memory().numTensors;
      const scores = await model.scorer.score(x, rows);
      expect(tf.memory().numTensors).toBe(before);
      const w = await readWeights(dir);
      const s = 'StatefulPartitionedCall/model';
      let worst = 0;
      for (let r = 0; r < rows; r++) {
        const h = relu(
          dense(Array.from(x.subarray(r * 5, r * 5 + 5)), weight(w, `${s}/dense/MatMul/ReadVariableOp`), weight(w, `${s}/dense/BiasAdd/ReadVariableOp`)),
        );
        const want = sigmoid(dense(h, weight(w, `${s}/churn/MatMul/ReadVariableOp`), weight(w, `${s}/churn/BiasAdd/ReadVariableOp`)))[0]!;
        worst = Math.max(worst, Math.abs(scores[r]! - want));
      }
      expect(worst).toBeLessThan(2e-6);
    } finally {
      model.dispose();
    }
  }

  it('runs with execute on every backend (cpu, wasm)', async () => {
    await check({}, 'cpu');
    await check({}, 'wasm');
  });

  it('runs a graph with control flow (Switch/Merge) with executeAsync', async () => {
    await check({ controlFlow: true }, 'cpu');
  });
});
