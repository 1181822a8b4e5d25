import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { loadModel } from '../../../src/model/load.js';
import { selectBackend } from '../../../src/model/backend.js';
import { makeModel, type MakeModelOptions } from '../../helpers/makeModel.js';

let root: string;
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'scorejob-load-'));
  await selectBackend('cpu');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function made(opts: MakeModelOptions = {}): Promise<string> {
  const dir = path.join(root, `m${n++}`);
  (await makeModel(dir, opts)).model.dispose();
  return dir;
}

async function loadError(dir: string, backend: 'cpu' | 'tensorflow' = 'cpu'): Promise<string> {
  const err = await loadModel(dir, { backend }).then(
    (m) => {
      m.dispose();
      throw new Error('loadModel succeeded');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  const message = (err as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('loadModel', () => {
  it('loads a model directory and describes its files', async () => {
    const dir = await made();
    const m = await loadModel(dir, { backend: 'cpu' });
    try {
      expect(m.backend).toBe('cpu');
      expect(m.inputWidth).toBe(13);
      expect(m.plan.width).toBe(13);
      expect(m.manifest.name).toBe('tiny');
      expect(m.files.map((f) => f.name)).toEqual(['manifest.json', 'model.json', 'weights.bin']);
      for (const f of m.files) {
        const bytes = await readFile(path.join(dir, f.name));
        expect(f.bytes).toBe(bytes.length);
        expect(f.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      }
      // Same as `sha256sum manifest.json model.json weights.bin | sha256sum`.
      const listing = m.files.map((f) => `${f.sha256}  ${f.name}\n`).join('');
      expect(m.sha256).toBe(createHash('sha256').update(listing).digest('hex'));
    } finally {
      m.dispose();
    }
  });

  it('gives a different sha256 when any file changes', async () => {
    const dir = await made();
    const before = await loadModel(dir, { backend: 'cpu' });
    before.dispose();
    const weights = await readFile(path.join(dir, 'weights.bin'));
    weights[0] = weights[0]! ^ 1;
    await writeFile(path.join(dir, 'weights.bin'), weights);
    const after = await loadModel(dir, { backend: 'cpu' });
    after.dispose();
    expect(after.sha256).not.toBe(before.sha256);
  });

  it('does not leak tensors when loaded and disposed', async () => {
    const dir = await made();
    const before = tf.memory().numTensors;
    (await loadModel(dir, { backend: 'cpu' })).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a missing directory', async () => {
    expect(await loadError(path.join(root, 'nope'))).toBe(`model directory ${path.join(root, 'nope')} does not exist (--model DIR)`);
  });

  it('refuses a missing manifest.json or model.json, naming the file', async () => {
    const dir = await made();
    await unlink(path.join(dir, 'manifest.json'));
    expect(await loadError(dir)).toMatch(new RegExp(`^${path.join(dir, 'manifest.json')} does not exist`));
    const dir2 = await made();
    await unlink(path.join(dir2, 'model.json'));
    expect(await loadError(dir2)).toMatch(new RegExp(`^${path.join(dir2, 'model.json')} does not exist`));
  });

  it('refuses a model.json that is not JSON, or truncated', async () => {
    const dir = await made();
    await writeFile(path.join(dir, 'model.json'), '<html>not json</html>');
    expect(await loadError(dir)).toMatch(new RegExp(`^${path.join(dir, 'model.json')} is not valid JSON: `));
    const dir2 = await made();
    const size = (await readFile(path.join(dir2, 'model.json'))).length;
    await truncate(path.join(dir2, 'model.json'), Math.floor(size / 2));
    expect(await loadError(dir2)).toMatch(new RegExp(`^${path.join(dir2, 'model.json')} is not valid JSON \\(truncated\\?\\): `));
  });

  it('refuses a model.json without the TF.js structure', async () => {
    const dir = await made();
    await writeFile(path.join(dir, 'model.json'), JSON.stringify({ weightsManifest: [] }));
    expect(await loadError(dir)).toBe(`${path.join(dir, 'model.json')}: modelTopology is missing (is this a TF.js model.json?)`);
  });

  it('refuses a missing weight shard, naming it', async () => {
    const dir = await made();
    await unlink(path.join(dir, 'weights.bin'));
    expect(await loadError(dir)).toBe(`${path.join(dir, 'weights.bin')} does not exist (model.json lists it in weightsManifest)`);
  });

  it('refuses a shard whose size does not match the weight specs, with both sizes', async () => {
    const dir = await made();
    const size = (await readFile(path.join(dir, 'weights.bin'))).length;
    await truncate(path.join(dir, 'weights.bin'), size - 4);
    expect(await loadError(dir)).toBe(
      `${path.join(dir, 'weights.bin')} has ${size - 4} bytes, but model.json's weight specs need ${size} bytes (wrong or partly copied file?)`,
    );
  });

  it('refuses a shard path outside the model directory', async () => {
    const dir = await made();
    const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
    json.weightsManifest[0].paths = ['../../etc/passwd'];
    await writeFile(path.join(dir, 'model.json'), JSON.stringify(json));
    expect(await loadError(dir)).toContain('weight file "../../etc/passwd" is outside the model directory');
  });

  it('refuses weight specs it cannot size', async () => {
    const dir = await made();
    const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
    json.weightsManifest[0].weights[0].dtype = 'string';
    await writeFile(path.join(dir, 'model.json'), JSON.stringify(json));
    expect(await loadError(dir)).toBe(
      `${path.join(dir, 'model.json')}: weightsManifest[0].weights[0] (hidden_0/kernel) has dtype "string", which scorejob cannot read`,
    );
  });

  it('refuses an invalid manifest, naming the file and field', async () => {
    const dir = await made();
    const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    manifest.features[1].std = -2;
    await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    expect(await loadError(dir)).toBe(`${path.join(dir, 'manifest.json')}: features[1].std must be a positive number (got -2)`);
  });

  it('refuses a model whose input width differs from what the features produce', async () => {
    const dir = await made({ inputWidth: 14 });
    expect(await loadError(dir)).toBe(`features in manifest.json produce 13 inputs but model.json expects 14 (${path.join(dir, 'model.json')})`);
  });

  it('requires output.unit when the last layer has several units or the model several outputs', async () => {
    expect(await loadError(await made({ outputs: [2] }))).toMatch(/^model has 2 output units; set output\.unit in manifest\.json/);
    expect(await loadError(await made({ outputs: [1, 1] }))).toMatch(/^model has 2 outputs; set output\.unit in manifest\.json/);
    const tooFar = await made({ outputs: [1, 2], manifest: { output: { name: 's', unit: 3 } } });
    expect(await loadError(tooFar)).toMatch(/output\.unit is 3 but the model has 3 output units \(0 to 2\)$/);
  });

  it('resolves output.unit across outputs', async () => {
    const m = await loadModel(await made({ outputs: [1, 2], manifest: { output: { name: 's', unit: 2 } } }), { backend: 'cpu' });
    m.dispose();
    expect(m.output).toEqual({ output: 1, unit: 1, units: 2, totalUnits: 3 });
  });

  it('refuses a forced backend that is not installed, naming the flag', async () => {
    const dir = await made();
    expect(await loadError(dir, 'tensorflow')).toBe(
      '--backend tensorflow: @tensorflow/tfjs-node is not installed (it needs libtensorflow; see docs/models.md, "Backends")',
    );
  });
});
