import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend, type BackendName } from '../../../src/model/backend.js';
import { loadModel } from '../../../src/model/load.js';
import type { Reject } from '../../../src/model/features.js';
import { keepFiniteScores } from '../../../src/model/scorer.js';
import { makeModel, type MakeModelOptions } from '../../helpers/makeModel.js';

const realModel = 'models/customer-value';
const haveRealModel = existsSync(path.join(realModel, 'model.json'));
if (!haveRealModel) console.log(`skipping the shipped-model test: ${realModel}/model.json does not exist yet (run \`npm run train\`)`);

let root: string;
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'scorejob-scorer-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Deterministic inputs in [-2, 2), with `extra` rows of garbage after the ones scored. */
function inputs(rows: number, width: number, extra = 0): Float32Array {
  const x = new Float32Array((rows + extra) * width);
  let s = 12345;
  for (let i = 0; i < x.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    x[i] = (s / 2 ** 32) * 4 - 2;
  }
  return x;
}

/** What the built model itself predicts (default predict options), one column of one output. */
async function reference(model: LayersModel, x: Float32Array, rows: number, width: number, output = 0, unit = 0): Promise<Float32Array> {
  const t = tf.tensor2d(x.subarray(0, rows * width), [rows, width]);
  const raw = model.predict(t);
  const y = Array.isArray(raw) ? raw[output]! : raw;
  const units = y.shape[1]!;
  const data = (await y.data()) as Float32Array;
  tf.dispose([t, raw]);
  return Float32Array.from({ length: rows }, (_, r) => data[r * units + unit]!);
}

function expectClose(actual: Float32Array, expected: Float32Array, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThanOrEqual(tolerance);
}

describe.each<BackendName>(['wasm', 'cpu'])('Scorer on the %s backend', (backend) => {
  async function setup(opts: MakeModelOptions = {}) {
    await selectBackend(backend);
    const made = await makeModel(path.join(root, `m${n++}`), { hidden: [16, 8], ...opts });
    const loaded = await loadModel(made.dir, { backend });
    expect(loaded.backend).toBe(backend);
    return { made, loaded, width: made.inputWidth };
  }

  it('scores what model.predict gives for the same input (1e-6)', async () => {
    const { made, loaded, width } = await setup();
    try {
      const x = inputs(1000, width, 37);
      expectClose(await loaded.scorer.score(x, 1000), await reference(made.model, x, 1000, width), 1e-6);
      // Fewer rows than the buffer holds: only the first rows are scored.
      expectClose(await loaded.scorer.score(x, 3), await reference(made.model, x, 3, width), 1e-6);
      expect((await loaded.scorer.score(x, 0)).length).toBe(0);
    } finally {
      loaded.dispose();
      made.model.dispose();
    }
  });

  it('picks output.unit across several outputs', async () => {
    const { made, loaded, width } = await setup({ outputs: [1, 3], manifest: { output: { name: 's', unit: 2 } } });
    try {
      const x = inputs(200, width);
      expectClose(await loaded.scorer.score(x, 200), await reference(made.model, x, 200, width, 1, 1), 1e-6);
    } finally {
      loaded.dispose();
      made.model.dispose();
    }
  });

  it('leaves no tensor behind', async () => {
    const { made, loaded, width } = await setup();
    made.model.dispose();
    const x = inputs(500, width);
    await loaded.scorer.score(x, 500);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await loaded.scorer.score(x, 100 + i);
    expect(tf.memory().numTensors).toBe(before);
    loaded.dispose();
    await expect(loaded.scorer.score(x, 1)).rejects.toThrow('scorer used after dispose()');
  });

  it('refuses an input shorter than rows × width', async () => {
    const { made, loaded, width } = await setup();
    made.model.dispose();
    try {
      await expect(loaded.scorer.score(new Float32Array(width * 2), 3)).rejects.toThrow(`cannot score 3 rows of ${width} from ${width * 2} floats`);
    } finally {
      loaded.dispose();
    }
  });
});

describe('the shipped model', () => {
  it.skipIf(!haveRealModel)('loads, and scores the same on wasm and cpu with predictions in [0, 1]', async () => {
    const rows = 100_000;
    const scores: Partial<Record<BackendName, Float32Array>> = {};
    for (const backend of ['wasm', 'cpu'] as const) {
      const model = await loadModel(realModel, { backend });
      try {
        const x = inputs(rows, model.inputWidth);
        await model.scorer.score(x, 1000); // warm-up
        const started = performance.now();
        scores[backend] = await model.scorer.score(x, rows);
        const seconds = (performance.now() - started) / 1000;
        console.log(`${realModel} on ${backend}: ${Math.round(rows / seconds).toLocaleString('en')} rows/s (${rows} rows, batchSize = rows)`);
      } finally {
        model.dispose();
      }
    }
    expectClose(scores.wasm!, scores.cpu!, 1e-5);
    expect(scores.wasm!.every((s) => s >= 0 && s <= 1)).toBe(true);
  });
});

describe('keepFiniteScores', () => {
  it('turns NaN and ±Infinity scores into non_finite_score rejects and keeps keys and scores aligned', () => {
    const keys = BigInt64Array.from([10n, -(2n ** 40n), 30n, 40n, 2n ** 62n, 60n]);
    const scores = Float32Array.from([0.1, Number.NaN, 0.3, Number.POSITIVE_INFINITY, 0.5, Number.NEGATIVE_INFINITY]);
    const rejects: Reject[] = [];
    const kept = keepFiniteScores(keys, scores, 6, rejects);
    expect(kept).toBe(3);
    expect(Array.from(keys.subarray(0, kept))).toEqual([10n, 30n, 2n ** 62n]);
    expect(Array.from(scores.subarray(0, kept))).toEqual([Math.fround(0.1), Math.fround(0.3), 0.5]);
    expect(rejects).toEqual([
      { key: -(2n ** 40n), reason: 'non_finite_score', column: null, value: 'NaN' },
      { key: 40n, reason: 'non_finite_score', column: null, value: 'Infinity' },
      { key: 60n, reason: 'non_finite_score', column: null, value: '-Infinity' },
    ]);
  });

  it('changes nothing when every score is finite, and looks only at the first `rows`', () => {
    const keys = BigInt64Array.from([1n, 2n, 3n]);
    const scores = Float32Array.from([0.2, 0.4, Number.NaN]);
    const rejects: Reject[] = [];
    expect(keepFiniteScores(keys, scores, 2, rejects)).toBe(2);
    expect(rejects).toEqual([]);
    expect(Array.from(keys)).toEqual([1n, 2n, 3n]);
  });
});
