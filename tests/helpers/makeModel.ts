/**
 * Builds small real TF.js models (no mocks) for tests, saved like `model.save()` does: model.json, one
 * weights.bin, plus a manifest.json. As a script it (re)writes the committed fixture:
 *
 *   npx tsx tests/helpers/makeModel.ts tests/fixtures/models/tiny
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { selectBackend } from '../../src/model/backend.js';
import type { Feature } from '../../src/model/manifest.js';

/** Features over columns of the synthetic customers table (src/dev/synthetic.ts): 13 inputs. */
export const tinyFeatures: Feature[] = [
  { column: 'tenure_months', transform: 'standardize', mean: 30, std: 20, min: 0, max: 120 },
  { column: 'revenue_12m', transform: 'standardize', mean: 500, std: 400, min: 0 },
  { column: 'days_since_last_order', transform: 'standardize', mean: 60, std: 50, fill: 365 },
  { column: 'segment', transform: 'one_hot', categories: ['consumer', 'smb', 'enterprise'] },
  { column: 'region', transform: 'one_hot', categories: ['north', 'south', 'east', 'west', 'central'], fill: 'central' },
  { column: 'is_subscriber', transform: 'boolean' },
  { column: 'has_app', transform: 'boolean', fill: false },
];

export interface MakeModelOptions {
  features?: Feature[];
  /** Model input width; default: what the features produce. */
  inputWidth?: number;
  /** Hidden dense layers (relu). Default [8]. */
  hidden?: number[];
  /** Units of each output (sigmoid). Default [1]; [1, 1] makes a two-output model, [2] one output of two units. */
  outputs?: number[];
  seed?: number;
  /** Replaces or adds manifest.json fields (e.g. `{ output: { name: 'x', unit: 1 } }`). */
  manifest?: Record<string, unknown>;
}

export interface MadeModel {
  dir: string;
  /** The model as built, for comparing predictions with what loadModel gives back. */
  model: tfl.LayersModel;
  manifest: Record<string, unknown>;
  inputWidth: number;
}

export function featureWidth(features: readonly Feature[]): number {
  return features.reduce((w, f) => w + (f.transform === 'one_hot' ? f.categories.length : 1), 0);
}

/** Builds a model with seeded weights and writes it to `dir`. A backend must be active (selectBackend). */
export async function makeModel(dir: string, opts: MakeModelOptions = {}): Promise<MadeModel> {
  const features = opts.features ?? tinyFeatures;
  const inputWidth = opts.inputWidth ?? featureWidth(features);
  const seed = opts.seed ?? 7;
  const init = (i: number) => tfl.initializers.glorotUniform({ seed: seed + i });
  const input = tfl.input({ shape: [inputWidth], name: 'features' });
  let h: tfl.SymbolicTensor = input;
  (opts.hidden ?? [8]).forEach((units, i) => {
    h = tfl.layers
      .dense({ units, activation: 'relu', kernelInitializer: init(i), biasInitializer: 'zeros', name: `hidden_${i}` })
      .apply(h) as tfl.SymbolicTensor;
  });
  const outputs = (opts.outputs ?? [1]).map(
    (units, i) =>
      tfl.layers
        .dense({
          units,
          activation: 'sigmoid',
          kernelInitializer: init(100 + i),
          biasInitializer: tfl.initializers.constant({ value: 0.1 }),
          name: `score_${i}`,
        })
        .apply(h) as tfl.SymbolicTensor,
  );
  const model = tfl.model({ inputs: input, outputs: outputs.length === 1 ? outputs[0]! : outputs });
  const manifest: Record<string, unknown> = {
    name: 'tiny',
    version: '0.0.1',
    description: 'Test fixture: a small untrained network over a few synthetic customer columns.',
    source: { table: 'customers', key: 'customer_id' },
    features,
    output: { name: 'test_score', description: 'meaningless, for tests' },
    ...opts.manifest,
  };
  await mkdir(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      };
      await writeFile(path.join(dir, 'model.json'), JSON.stringify(modelJson));
      await writeFile(path.join(dir, 'weights.bin'), weights);
      return { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } };
    }),
  );
  await writeFile(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir, model, manifest, inputWidth };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const dir = process.argv[2] ?? 'tests/fixtures/models/tiny';
  await selectBackend('cpu');
  const made = await makeModel(dir);
  made.model.dispose();
  console.log(`wrote ${dir} (${made.inputWidth} inputs)`);
}
