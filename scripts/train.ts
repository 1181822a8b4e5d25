/**
 * Trains the shipped model, `models/customer-value/`, on synthetic customers (src/dev/synthetic.ts):
 * `npm run train [-- OUT_DIR]`. Deterministic: fixed data seed, seeded initializers, seeded shuffles, and
 * the pure-JS cpu backend, so a retrain writes the same weights (only `trained_at` changes).
 *
 * The features are computed here exactly as manifest.json tells the scorer to compute them (NULL -> fill,
 * then standardize / one_hot / boolean, in manifest order), with the very numbers written to the manifest,
 * so that scoring in PostgreSQL sees what training saw.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { channels, churnProbability, generateLabeledCustomers, regions, segments, type CustomerRow, type LabeledCustomerRow } from '../src/dev/synthetic.js';

const dataSeed = 7;
const trainRows = 60_000;
const holdoutRows = 20_000;
const epochs = 12;
const batchSize = 256;
const outDir = process.argv[2] ?? fileURLToPath(new URL('../models/customer-value/', import.meta.url));

type NumericColumn = { [K in keyof CustomerRow]: CustomerRow[K] extends number | null ? K : never }[keyof CustomerRow];
type BooleanColumn = 'is_subscriber' | 'has_app';
type CategoryColumn = 'segment' | 'region' | 'channel';

/** manifest.json `features[i]` (docs/models.md; parsed by src/model/manifest.ts). */
type Feature =
  | { column: NumericColumn; transform: 'standardize'; mean: number; std: number; min: number; max: number; fill?: number }
  | { column: CategoryColumn; transform: 'one_hot'; categories: string[]; fill?: string }
  | { column: BooleanColumn; transform: 'boolean'; fill?: boolean };

/** NULL fills for the columns the generator can leave NULL; the others get none, so a NULL there is rejected. */
const numericColumns: { column: NumericColumn; fill?: number }[] = [
  { column: 'tenure_months' },
  { column: 'orders_12m' },
  { column: 'revenue_12m' },
  { column: 'avg_order_value' },
  // NULL means "never ordered": treat it as a very long time ago.
  { column: 'days_since_last_order', fill: 730 },
  { column: 'support_tickets_12m' },
  { column: 'discount_share' },
  { column: 'returns_12m' },
  { column: 'web_sessions_30d' },
  { column: 'email_open_rate', fill: 0.25 },
];

async function main(): Promise<void> {
  const started = performance.now();
  await tf.setBackend('cpu');
  await tf.ready();
  const all = [...generateLabeledCustomers({ count: trainRows + holdoutRows, seed: dataSeed })];
  const train = all.slice(0, trainRows);
  const holdout = all.slice(trainRows);
  const features = describeFeatures(train);
  const width = inputWidth(features);
  const xTrain = encode(train, features, width);
  const yTrain = Float32Array.from(train, (r) => (r.churned ? 1 : 0));
  const xHoldout = encode(holdout, features, width);

  const model = buildModel(width);
  const xs = tf.tensor2d(xTrain, [train.length, width]);
  const ys = tf.tensor2d(yTrain, [train.length, 1]);
  for (let epoch = 0; epoch < epochs; epoch++) {
    // Our own seeded shuffle: fit's built-in one uses Math.random and would make every retrain differ.
    const order = tf.tensor1d(permutation(train.length, 1000 + epoch), 'int32');
    const [xe, ye] = [tf.gather(xs, order), tf.gather(ys, order)];
    const history = await model.fit(xe, ye, { epochs: 1, batchSize, shuffle: false, verbose: 0 });
    tf.dispose([order, xe, ye]);
    if (epoch % 4 === 3 || epoch === epochs - 1) {
      const auc = rocAuc(await predict(model, xHoldout, width), holdout);
      console.log(`epoch ${epoch + 1}/${epochs}  loss ${Number(history.history.loss?.[0]).toFixed(4)}  holdout AUC ${auc.toFixed(4)}`);
    }
  }
  tf.dispose([xs, ys]);

  await mkdir(outDir, { recursive: true });
  await saveModel(model, outDir);
  // Score the holdout with the model as written to disk: proves the files load and are the model we measured.
  const reloaded = await loadSaved(outDir);
  const holdoutAuc = rocAuc(await predict(reloaded, xHoldout, width), holdout);
  await writeManifest(outDir, features, holdoutAuc);
  const seconds = (performance.now() - started) / 1000;
  console.log(`wrote ${relative(process.cwd(), outDir) || '.'}: input width ${width}, ${train.length} training rows, ${holdout.length} holdout rows`);
  console.log(
    `holdout AUC ${holdoutAuc.toFixed(4)} (the generator's own noiseless probability: ${rocAuc(Float32Array.from(holdout, churnProbability), holdout).toFixed(4)}), ${seconds.toFixed(1)} s`,
  );
}

/** Transforms and their constants, from the training rows only (the holdout stays unseen). */
function describeFeatures(train: readonly CustomerRow[]): Feature[] {
  const numeric = numericColumns.map(({ column, fill }): Feature => {
    const values = train.map((r) => r[column] ?? fill);
    if (values.some((v) => v === undefined)) throw new Error(`${column} has NULLs in training but no fill`);
    const filled = values as number[];
    const mean = filled.reduce((a, b) => a + b, 0) / filled.length;
    const std = Math.sqrt(filled.reduce((a, b) => a + (b - mean) ** 2, 0) / filled.length) || 1;
    const observed = train.map((r) => r[column]).filter((v): v is number => v !== null);
    // Rounded before use: training and the manifest must hold the very same constants.
    const f: Feature = {
      column,
      transform: 'standardize',
      mean: round6(mean),
      std: round6(std),
      min: observed.reduce((a, b) => Math.min(a, b)),
      max: observed.reduce((a, b) => Math.max(a, b)),
    };
    if (fill !== undefined) f.fill = fill;
    return f;
  });
  return [
    ...numeric,
    { column: 'segment', transform: 'one_hot', categories: [...segments] },
    { column: 'region', transform: 'one_hot', categories: [...regions], fill: mostCommon(train.map((r) => r.region)) },
    { column: 'channel', transform: 'one_hot', categories: [...channels] },
    { column: 'is_subscriber', transform: 'boolean' },
    { column: 'has_app', transform: 'boolean', fill: false },
  ];
}

function inputWidth(features: readonly Feature[]): number {
  return features.reduce((w, f) => w + (f.transform === 'one_hot' ? f.categories.length : 1), 0);
}

/** Rows to the model's input matrix, exactly as the manifest describes it (see the file comment). */
function encode(rows: readonly CustomerRow[], features: readonly Feature[], width: number): Float32Array {
  const x = new Float32Array(rows.length * width);
  rows.forEach((row, i) => {
    let at = i * width;
    for (const f of features) {
      if (f.transform === 'standardize') {
        const v = row[f.column] ?? f.fill;
        if (v === undefined) throw new Error(`NULL ${f.column} without fill`);
        x[at++] = (v - f.mean) / f.std;
      } else if (f.transform === 'boolean') {
        x[at++] = (row[f.column] ?? f.fill) ? 1 : 0;
      } else {
        const code = f.categories.indexOf(row[f.column] ?? f.fill ?? '');
        if (code >= 0) x[at + code] = 1; // unknown category: all zeros
        at += f.categories.length;
      }
    }
  });
  return x;
}

function buildModel(width: number): tfl.Sequential {
  const init = (seed: number) => tfl.initializers.glorotUniform({ seed });
  const model = tfl.sequential({
    name: 'customer_value',
    layers: [
      tfl.layers.dense({ name: 'hidden_1', inputShape: [width], units: 32, activation: 'relu', kernelInitializer: init(11) }),
      tfl.layers.dense({ name: 'hidden_2', units: 16, activation: 'relu', kernelInitializer: init(12) }),
      tfl.layers.dense({ name: 'churn_probability', units: 1, activation: 'sigmoid', kernelInitializer: init(13) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.002), loss: 'binaryCrossentropy' });
  return model;
}

async function predict(model: tfl.LayersModel, x: Float32Array, width: number): Promise<Float32Array> {
  const input = tf.tensor2d(x, [x.length / width, width]);
  const y = model.predict(input, { batchSize: 4096 }) as tf.Tensor;
  const scores = (await y.data()) as Float32Array;
  tf.dispose([input, y]);
  return scores;
}

/**
 * Writes model.json and weights.bin in the standard TF.js layers-model format ourselves: the file://
 * save handler lives in tfjs-node, which this project does not require.
 */
async function saveModel(model: tfl.LayersModel, dir: string): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      if (artifacts.weightData === undefined || artifacts.weightSpecs === undefined) throw new Error('model has no weights to save');
      const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: null,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      };
      await writeFile(join(dir, 'weights.bin'), weights);
      await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson) + '\n');
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

async function loadSaved(dir: string): Promise<tfl.LayersModel> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const bin = await readFile(join(dir, 'weights.bin'));
  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  return tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
}

async function writeManifest(dir: string, features: Feature[], holdoutAuc: number): Promise<void> {
  const manifest = {
    name: 'customer-value',
    version: '1.0.0',
    description:
      'Probability that a customer churns in the next 90 days, from 12-month order, support and engagement history. ' +
      `Trained by scripts/train.ts on ${trainRows} synthetic customers (src/dev/synthetic.ts, seed ${dataSeed}); ` +
      `evaluated on the next ${holdoutRows} generated customers.`,
    source: { table: 'customers', key: 'customer_id' },
    features,
    output: { name: 'churn_probability', description: 'probability that the customer churns in the next 90 days', unit: 0 },
    training: {
      rows: trainRows,
      holdout_rows: holdoutRows,
      holdout_auc: Number(holdoutAuc.toFixed(4)),
      seed: dataSeed,
      epochs,
      batch_size: batchSize,
      architecture: 'dense 32 relu -> dense 16 relu -> dense 1 sigmoid',
      backend: tf.getBackend(),
      trained_at: new Date().toISOString(),
      script: 'scripts/train.ts',
    },
  };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
}

/** Rank-based ROC AUC (Mann-Whitney U), tied scores sharing their average rank. */
function rocAuc(scores: Float32Array, rows: readonly LabeledCustomerRow[]): number {
  const order = Array.from(scores.keys()).sort((a, b) => scores[a]! - scores[b]!);
  let positiveRankSum = 0;
  let positives = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (rows[order[k]!]!.churned) {
        positiveRankSum += rank;
        positives++;
      }
    }
    i = j + 1;
  }
  const negatives = order.length - positives;
  return (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

function permutation(n: number, seed: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    // xorshift32: enough randomness to reorder batches, identical on every run.
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const j = (s >>> 0) % (i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

function mostCommon<T extends string>(values: readonly (T | null)[]): T {
  const counts = new Map<T, number>();
  for (const v of values) if (v !== null) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]![0];
}

function round6(x: number): number {
  return Number(x.toPrecision(6));
}

await main();
