import { stat } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { BackendChoice } from '../config.js';
import { UsageError } from '../errors.js';
import { selectBackend, type BackendName, type OnBackendSkipped } from './backend.js';
import { checkEmbeddings } from './embeddingCheck.js';
import { compileFeatures, type FeaturePlan } from './features.js';
import { parseManifest, type Manifest } from './manifest.js';
import { layoutInputs } from './inputLayout.js';
import type { InputSlot } from './tensorTypes.js';
import { readModelDirectory, type ModelFile } from './modelFiles.js';
import { createTfScorer, type OutputSelection, type Scorer } from './scorer.js';
import { loadTfModel, type TfModel } from './tfModel.js';

export interface LoadModelOptions {
  backend: BackendChoice;
  /** Told about each backend `auto` passed over, and why. */
  onBackendSkipped?: OnBackendSkipped | undefined;
  /**
   * Accept a draft manifest (`"draft": true`): for what publishes nothing (`model inspect`, a dry run).
   * Otherwise a draft is refused before the model is loaded.
   */
  allowDraft?: boolean | undefined;
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
  format: TfModel['format'];
  /** How the model runs: a layers model's predict, a graph's execute, or executeAsync (control flow, dynamic ops). */
  execution: 'predict' | 'execute' | 'executeAsync';
  /** The model's inputs, each with the features' columns that feed it. */
  inputs: InputSlot[];
  /** Floats per row the features produce (all inputs together). */
  inputWidth: number;
  /** The score's output and unit, resolved from `output.from` / `output.unit` and the model's outputs. */
  output: OutputSelection & { totalUnits: number };
  /** The name of the output that holds the score (signature key or layer name). */
  outputName: string;
  scorer: Scorer;
  /** The loaded TF.js model the scorer runs (for `--reasons`: src/model/explainer.ts). */
  tfModel: TfModel;
  /** Frees the model (same as `scorer.dispose()`). */
  dispose(): void;
}

/**
 * Reads and checks a model directory and loads its model: every problem with the files, the manifest or
 * their agreement is a {@link UsageError} (exit 2), found before anything touches the database. The
 * model is run once on two rows of zeros, so that an op the backend lacks stops the start, not a chunk.
 */
export async function loadModel(dir: string, opts: LoadModelOptions): Promise<LoadedModel> {
  await checkDirectory(dir);
  const files = await readModelDirectory(dir);
  const manifestFile = path.join(dir, 'manifest.json');
  const manifest = parseManifest(files.manifestJson, manifestFile);
  if (manifest.draft && opts.allowDraft !== true) throw draftRefusal(manifestFile);
  const plan = compileFeatures(manifest);
  const backend = await selectBackend(opts.backend, opts.onBackendSkipped);
  const modelFile = path.join(dir, 'model.json');
  let model: TfModel;
  try {
    const artifacts = await tf.io.getModelArtifactsForJSON(files.modelJson, async (groups) => [groups.flatMap((g) => g.weights), files.weightData]);
    model = await loadTfModel(artifacts);
  } catch (err) {
    throw new UsageError(`${modelFile}: TF.js cannot load the model: ${loadFailure(err)}`, { cause: err });
  }
  try {
    const slots = layoutInputs(plan, model.inputs, { manifest: manifestFile, model: modelFile });
    checkEmbeddings(plan, slots, model.embeddings ?? [], manifestFile);
    const outputs = await probe(model, slots, backend, modelFile);
    const output = selectOutput(model.outputNames, outputs, manifest, modelFile);
    const scorer = createTfScorer(model, plan.width, slots, output);
    return {
      dir,
      manifest,
      plan,
      sha256: files.sha256,
      files: files.files,
      backend,
      format: model.format,
      execution: model.format === 'layers-model' ? 'predict' : model.async ? 'executeAsync' : 'execute',
      inputs: slots,
      inputWidth: plan.width,
      output,
      outputName: model.outputNames[output.output]!,
      scorer,
      tfModel: model,
      dispose: () => scorer.dispose(),
    };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/**
 * TF.js's reason in one line (errors are one line, docs/troubleshooting.md). Its message for an
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

/** A draft's refusal, in one line: what to review, how to mark it reviewed, and the one way to try it before. */
export function draftRefusal(manifestFile: string): UsageError {
  return new UsageError(
    `${manifestFile} is a draft ("draft": true, written by scorejob model init) that nobody has reviewed: check each feature's transform, ` +
      `categories and fill against training and write output.description, then delete "draft": true from it (until then only --dry-run scores with it)`,
  );
}

async function checkDirectory(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined) throw new UsageError(`model directory ${dir} does not exist (--model DIR)`);
  if (!info.isDirectory()) throw new UsageError(`model directory ${dir} is not a directory (--model DIR)`);
}

/** Shape and dtype of each output, as a real prediction gives them. */
interface ProbedOutput {
  shape: number[];
  dtype: string;
}

/**
 * One prediction on two rows of zeros (id 0 is valid for any index input): finds an op the graph
 * uses that TF.js or the backend lacks, switches a graph with control flow to `executeAsync`, and
 * gives every output's real shape (a graph's output nodes do not declare one).
 */
async function probe(model: TfModel, slots: readonly InputSlot[], backend: BackendName, file: string): Promise<ProbedOutput[]> {
  const all = model.outputNames.map((_, i) => i);
  const once = async (): Promise<ProbedOutput[]> => {
    const inputs = slots.map((s) => (s.rank === 1 ? tf.zeros([2], s.dtype) : tf.zeros([2, s.width], s.dtype)));
    try {
      const outs = await model.run(inputs, all);
      const described = outs.map((t) => ({ shape: [...t.shape], dtype: t.dtype }));
      for (const t of outs) t.dispose();
      return described;
    } finally {
      for (const t of inputs) t.dispose();
    }
  };
  try {
    return await once();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (model.format === 'graph-model' && !model.async && /executeAsync/.test(message)) {
      // Control flow (While, Switch/Merge) or dynamic-shape ops (NonMaxSuppression, Where): only executeAsync runs them.
      model.useAsync();
      return await once().catch((again: unknown) => {
        throw opFailure(again, backend, file);
      });
    }
    throw opFailure(err, backend, file);
  }
}

/** The op and the backend, in one line. */
function opFailure(err: unknown, backend: BackendName, file: string): UsageError {
  const message = err instanceof Error ? err.message : String(err);
  const other = backend === 'cpu' ? '' : ' (try --backend cpu)';
  const kernel = /Kernel '([^']+)' not registered for backend '([^']+)'/.exec(message);
  if (kernel) return new UsageError(`${file}: the model needs op ${kernel[1]}, which the ${kernel[2]} backend does not have${other}`, { cause: err });
  const unknown = /Unknown op '([^']+)'/.exec(message) ?? /Custom op (\S+) is not registered/.exec(message);
  if (unknown)
    return new UsageError(
      `${file}: the graph uses op ${unknown[1]}, which TF.js ${tf.version_core} does not implement (on the ${backend} backend or any other)`,
      { cause: err },
    );
  return new UsageError(`${file}: a test prediction on the ${backend} backend failed: ${message.replace(/\s+/g, ' ').trim()}`, { cause: err });
}

/**
 * Units count across the model's outputs in order; `output.unit` picks one. Without it the model must
 * have a single unit, so a multi-output model never silently scores with the wrong one. `output.from`
 * names the output instead; `unit` then counts within it.
 */
function selectOutput(names: readonly string[], probed: readonly ProbedOutput[], manifest: Manifest, file: string): LoadedModel['output'] {
  const manifestFile = path.join(path.dirname(file), 'manifest.json');
  const units = probed.map((o, i) => {
    const label = names.length > 1 ? `output ${i} ("${names[i]}")` : `output ${i}`;
    if (o.shape.length !== 1 && o.shape.length !== 2) {
      throw new UsageError(`${file}: ${label} has shape [rows, ${o.shape.slice(1).join(', ')}]; scorejob reads [rows, units] outputs`);
    }
    if (o.dtype !== 'float32') throw new UsageError(`${file}: ${label} is ${o.dtype}; scores must be float32`);
    return o.shape.length === 1 ? 1 : o.shape[1]!;
  });
  const totalUnits = units.reduce((a, b) => a + b, 0);
  const from = manifest.output.from;
  if (from !== undefined) {
    // A graph's output may be named with its tensor index (`Identity:0`); the bare node name matches too.
    const output = names.findIndex((n) => n === from || n.replace(/:0$/, '') === from.replace(/:0$/, ''));
    if (output < 0)
      throw new UsageError(`${manifestFile}: output.from "${from}" is not an output of the model (its outputs: ${names.map((n) => `"${n}"`).join(', ')})`);
    const unit = manifest.output.unit ?? 0;
    if (manifest.output.unit === undefined && units[output]! !== 1) {
      throw new UsageError(
        `model output "${from}" has ${units[output]} units; set output.unit in manifest.json (${manifestFile}) to the one that is the score`,
      );
    }
    if (unit >= units[output]!)
      throw new UsageError(`${manifestFile}: output.unit is ${unit} but output "${from}" has ${units[output]} units (0 to ${units[output]! - 1})`);
    return { output, unit, units: units[output]!, totalUnits };
  }
  let unit = manifest.output.unit;
  if (unit === undefined) {
    if (totalUnits !== 1) {
      const what = units.length > 1 ? `${units.length} outputs` : `${totalUnits} output units`;
      throw new UsageError(`model has ${what}; set output.unit in manifest.json (${manifestFile}) to the one that is the score, or output.from to its name`);
    }
    unit = 0;
  }
  if (unit >= totalUnits) {
    throw new UsageError(`${manifestFile}: output.unit is ${unit} but the model has ${totalUnits} output units (0 to ${totalUnits - 1})`);
  }
  let output = 0;
  let first = 0;
  while (unit >= first + units[output]!) first += units[output++]!;
  return { output, unit: unit - first, units: units[output]!, totalUnits };
}
