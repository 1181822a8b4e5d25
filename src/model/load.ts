import { stat } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import type { BackendChoice } from '../config.js';
import { UsageError } from '../errors.js';
import { selectBackend, type BackendName, type OnBackendSkipped } from './backend.js';
import { compileFeatures, type FeaturePlan } from './features.js';
import { parseManifest, type Manifest } from './manifest.js';
import { readModelDirectory, type ModelFile } from './modelFiles.js';
import { createTfScorer, type OutputSelection, type Scorer } from './scorer.js';

export interface LoadModelOptions {
  backend: BackendChoice;
  /** Told about each backend `auto` passed over, and why. */
  onBackendSkipped?: OnBackendSkipped | undefined;
}

/** A model ready to score, checked against its manifest. */
export interface LoadedModel {
  dir: string;
  manifest: Manifest;
  plan: FeaturePlan;
  /** Fingerprint of the model files (see `combinedSha256` in modelFiles.ts). */
  sha256: string;
  files: ModelFile[];
  /** The TF.js backend scoring runs on. */
  backend: BackendName;
  inputWidth: number;
  /** The score's output and unit, resolved from `output.unit` and the model's outputs. */
  output: OutputSelection & { totalUnits: number };
  scorer: Scorer;
  /** Frees the model (same as `scorer.dispose()`). */
  dispose(): void;
}

/**
 * Reads and checks a model directory and loads its model: every problem with the files, the manifest or
 * their agreement is a {@link UsageError} (exit 2), found before anything touches the database.
 */
export async function loadModel(dir: string, opts: LoadModelOptions): Promise<LoadedModel> {
  await checkDirectory(dir);
  const files = await readModelDirectory(dir);
  const manifest = parseManifest(files.manifestJson, path.join(dir, 'manifest.json'));
  const plan = compileFeatures(manifest);
  const backend = await selectBackend(opts.backend, opts.onBackendSkipped);
  const modelFile = path.join(dir, 'model.json');
  let model: LayersModel;
  try {
    const artifacts = await tf.io.getModelArtifactsForJSON(files.modelJson, async (groups) => [groups.flatMap((g) => g.weights), files.weightData]);
    model = await loadLayersModel(tf.io.fromMemory(artifacts), { strict: true });
  } catch (err) {
    throw new UsageError(`${modelFile}: TF.js cannot load the model: ${loadFailure(err)}`, { cause: err });
  }
  try {
    const inputWidth = checkInput(model, plan, modelFile);
    const output = selectOutput(model, manifest, modelFile);
    const scorer = createTfScorer(model, inputWidth, output);
    return { dir, manifest, plan, sha256: files.sha256, files: files.files, backend, inputWidth, output, scorer, dispose: () => scorer.dispose() };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/**
 * TF.js's reason in one line (errors are one line, README "What can go wrong"). Its message for an
 * unknown layer runs over three lines of generic advice; the class name is what a person needs.
 */
function loadFailure(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // tfjs-layers: `Unknown ${kind}: ${name}. This may be due to …` for a layer, initializer, activation, … it has no class for.
  const unknown = /^Unknown (\w+): ([^\s.]+)/.exec(message);
  if (unknown) {
    const [, kind, name] = unknown;
    return `unknown ${kind} class ${name} (not built into TF.js: save the model with built-in ${kind}s only, or port it to TF.js and register it)`;
  }
  return message.replace(/\s+/g, ' ').trim();
}

async function checkDirectory(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined) throw new UsageError(`model directory ${dir} does not exist (--model DIR)`);
  if (!info.isDirectory()) throw new UsageError(`model directory ${dir} is not a directory (--model DIR)`);
}

/** One `[batch, width]` input whose width is what the features produce. */
function checkInput(model: LayersModel, plan: FeaturePlan, file: string): number {
  if (model.inputs.length !== 1) throw new UsageError(`${file}: the model has ${model.inputs.length} inputs; scorejob feeds one [rows, features] input`);
  const shape = model.inputs[0]!.shape;
  const width = shape[1];
  if (shape.length !== 2 || typeof width !== 'number') {
    throw new UsageError(`${file}: the model's input shape is [${shape.map(String).join(', ')}]; scorejob feeds [rows, features]`);
  }
  if (width !== plan.width) {
    throw new UsageError(`features in manifest.json produce ${plan.width} inputs but ${path.basename(file)} expects ${width} (${file})`);
  }
  return width;
}

/**
 * Units count across the model's outputs in order; `output.unit` picks one. Without it the model must
 * have a single unit, so a multi-output model never silently scores with the wrong one.
 */
function selectOutput(model: LayersModel, manifest: Manifest, file: string): LoadedModel['output'] {
  const units = model.outputs.map((o, i) => {
    const last = o.shape[o.shape.length - 1];
    if (o.shape.length !== 2 || typeof last !== 'number') {
      throw new UsageError(`${file}: output ${i} has shape [${o.shape.map(String).join(', ')}]; scorejob reads [rows, units] outputs`);
    }
    if (o.dtype !== 'float32') throw new UsageError(`${file}: output ${i} is ${o.dtype}; scores must be float32`);
    return last;
  });
  const totalUnits = units.reduce((a, b) => a + b, 0);
  let unit = manifest.output.unit;
  if (unit === undefined) {
    if (totalUnits !== 1) {
      const what = units.length > 1 ? `${units.length} outputs` : `${totalUnits} output units`;
      throw new UsageError(`model has ${what}; set output.unit in manifest.json (${path.join(path.dirname(file), 'manifest.json')}) to the one that is the score`);
    }
    unit = 0;
  }
  if (unit >= totalUnits) {
    throw new UsageError(`${path.join(path.dirname(file), 'manifest.json')}: output.unit is ${unit} but the model has ${totalUnits} output units (0 to ${totalUnits - 1})`);
  }
  let output = 0;
  let first = 0;
  while (unit >= first + units[output]!) first += units[output++]!;
  return { output, unit: unit - first, units: units[output]!, totalUnits };
}
