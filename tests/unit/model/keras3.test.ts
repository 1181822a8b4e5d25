import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { writeTwoInputModel } from '../../../scripts/fixtures/byoModels.js';
import { writeKeras3FunctionalModel, writeKeras3SequentialModel } from '../../../scripts/fixtures/keras3Models.js';
import { selectBackend } from '../../../src/model/backend.js';
import { fromKeras3 } from '../../../src/model/keras3.js';
import { fromKeras3Weights } from '../../../src/model/keras3Weights.js';
import { loadModel } from '../../../src/model/load.js';
import { shippedModelDir } from '../../helpers/run.js';

const topologyOf = async (dir: string) => (JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as { modelTopology: unknown }).modelTopology;
const tensor = (layer: string) => ({ class_name: '__keras_tensor__', config: { shape: [null, 2], dtype: 'float32', keras_history: [layer, 0, 0] } });

describe('Keras 3 configs in the Keras 2 shapes TF.js reads (fromKeras3)', () => {
  it('leaves a Keras 2 config as it is (the shipped model, a functional one from TF.js)', async () => {
    await selectBackend('cpu');
    const dir = join(await mkdtemp(join(tmpdir(), 'sj-k2-')), 'two-inputs');
    await writeTwoInputModel(dir);
    for (const model of [shippedModelDir, dir]) {
      const json = JSON.parse(await readFile(join(model, 'model.json'), 'utf8')) as {
        modelTopology: unknown;
        weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[];
      };
      expect(fromKeras3(json.modelTopology)).toEqual(json.modelTopology);
      const weightSpecs = json.weightsManifest.flatMap((g) => g.weights);
      const weightData = new ArrayBuffer(8);
      expect(fromKeras3Weights({ weightSpecs, weightData }, json.modelTopology)).toEqual({ weightSpecs, weightData });
    }
  });

  it('rewrites input shapes, dtype policies, call records, serialization keys and class names, without changing its argument', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'sj-k3-')), 'functional');
    await writeKeras3FunctionalModel(dir);
    const topology = await topologyOf(dir);
    const original = JSON.stringify(topology);
    const out = fromKeras3(topology) as { model_config: { class_name: string; config: { layers: Record<string, any>[]; output_layers: unknown } } };
    expect(JSON.stringify(topology)).toBe(original);
    const layers = new Map(out.model_config.config.layers.map((l) => [l.name as string, l]));
    expect(layers.get('numeric')!.config).toMatchObject({ batch_input_shape: [null, 4], dtype: 'float32' });
    expect(layers.get('numeric')!.config).not.toHaveProperty('batch_shape');
    expect(layers.get('hidden')!.config.dtype).toBe('float32');
    expect(layers.get('hidden')!.config.kernel_initializer).toEqual({ class_name: 'GlorotUniform', config: { seed: null } });
    expect(layers.get('hidden')!.config.kernel_regularizer).toBeNull();
    expect(layers.get('joined')!.inbound_nodes).toEqual([
      [
        ['normalization', 0, 0, {}],
        ['segment_flat', 0, 0, {}],
        ['region_flat', 0, 0, {}],
      ],
    ]);
    expect(layers.get('dropout')!.inbound_nodes).toEqual([[['batch_normalization', 0, 0, {}]]]);
    expect(out.model_config.config.output_layers).toEqual([['churn', 0, 0]]);
    expect(JSON.stringify(out)).not.toMatch(/"(module|registered_name|build_config|__keras_tensor__)"/);
  });

  it('takes a dict of inputs, a tuple of tensors, LecunNormal, a mixed-precision policy and a nested model', () => {
    const policy = { module: 'keras', class_name: 'DTypePolicy', config: { name: 'mixed_float16' }, registered_name: null };
    const topology = {
      class_name: 'Functional',
      config: {
        layers: [
          {
            class_name: 'Add',
            name: 'sum',
            config: { name: 'sum', dtype: policy },
            inbound_nodes: [{ args: [{ class_name: '__tuple__', config: { value: [tensor('a'), tensor('b')] } }], kwargs: {} }],
          },
          {
            class_name: 'Dense',
            name: 'out',
            config: { name: 'out', kernel_initializer: { module: 'keras.initializers', class_name: 'LecunNormal', config: { seed: 3 } } },
            inbound_nodes: [],
          },
          { class_name: 'Sequential', name: 'inner', config: { layers: [{ class_name: 'InputLayer', config: { batch_shape: [null, 2] } }] } },
        ],
        input_layers: { a: ['a', 0, 0], b: ['b', 0, 0] },
        output_layers: [['out', 0, 0]],
      },
    };
    const out = fromKeras3(topology) as any;
    expect(out.config.input_layers).toEqual([
      ['a', 0, 0],
      ['b', 0, 0],
    ]);
    expect(out.config.layers[0].config.dtype).toBe('float32');
    expect(out.config.layers[0].inbound_nodes).toEqual([
      [
        ['a', 0, 0, {}],
        ['b', 0, 0, {}],
      ],
    ]);
    expect(out.config.layers[1].config.kernel_initializer).toEqual({ class_name: 'LeCunNormal', config: { seed: 3 } });
    expect(out.config.layers[2].config.layers[0].config).toEqual({ batch_input_shape: [null, 2] });
  });

  it('a Keras 3 model loads with its Embeddings found for the id check, and frees every tensor it made', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'sj-k3-')), 'functional');
    await writeKeras3FunctionalModel(dir);
    const before = tf.memory().numTensors;
    const model = await loadModel(dir, { backend: 'cpu' });
    try {
      expect(model.inputs.map((i) => `${i.name}:${i.dtype}`)).toEqual(['numeric:float32', 'segment_id:int32', 'region_id:int32']);
      expect(model.tfModel.embeddings).toEqual([
        { input: 1, layer: 'segment_embedding', inputDim: 4 },
        { input: 2, layer: 'region_embedding', inputDim: 6 },
      ]);
    } finally {
      model.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a Normalization given its mean and variance in the config frees them with the model', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'sj-k3-')), 'sequential');
    await writeKeras3SequentialModel(dir);
    const before = tf.memory().numTensors;
    const model = await loadModel(dir, { backend: 'cpu' });
    expect(model.inputs.map((i) => i.name)).toEqual(['input_layer']);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("names a .keras conversion's store-path weights as TF.js does, and drops the training-only ones wherever they lie", () => {
    const topology = {
      class_name: 'Functional',
      config: {
        layers: [
          { class_name: 'Dense', name: 'd', config: { use_bias: false } },
          { class_name: 'BatchNormalization', name: 'bn', config: { scale: false } },
          { class_name: 'Custom', name: 'c', config: {} },
        ],
      },
    };
    const specs: tf.io.WeightsManifestEntry[] = [
      { name: 'layers/d/vars/0', shape: [2], dtype: 'float32' },
      { name: 'optimizer/vars/0', shape: [], dtype: 'int32' },
      { name: 'layers/bn/vars/0', shape: [1], dtype: 'float32', quantization: { dtype: 'uint8', scale: 1, min: 0 } },
      { name: 'metrics/auc/vars/0', shape: [3], dtype: 'float32' },
      { name: 'layers/bn/vars/2', shape: [1], dtype: 'float32' },
      { name: 'layers/c/vars/0', shape: [1], dtype: 'float32' },
    ];
    const bytes = new Uint8Array([1, 1, 1, 1, 2, 2, 2, 2, 9, 9, 9, 9, 3, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4, 5, 5, 5, 5]);
    const out = fromKeras3Weights({ weightSpecs: specs, weightData: bytes.buffer }, topology);
    expect(out.weightSpecs!.map((w) => w.name)).toEqual(['d/kernel', 'bn/beta', 'bn/moving_variance', 'layers/c/vars/0']);
    expect(Array.from(new Uint8Array(out.weightData as ArrayBuffer))).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 3, 4, 4, 4, 4, 5, 5, 5, 5]);
    const plain = { weightSpecs: [{ name: 'dense/kernel', shape: [1], dtype: 'float32' as const }], weightData: new ArrayBuffer(4) };
    expect(fromKeras3Weights(plain, topology)).toEqual(plain);
    const underModel = {
      weightSpecs: [
        { name: 'sequential/d/kernel', shape: [1], dtype: 'float32' as const },
        { name: 'sequential/c/w', shape: [1], dtype: 'float32' as const },
      ],
      weightData: new ArrayBuffer(8),
    };
    expect(fromKeras3Weights(underModel, topology).weightSpecs!.map((w) => w.name)).toEqual(['d/kernel', 'sequential/c/w']);
  });
});
