import { stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { UsageError } from '../errors.js';
import { selectBackend } from './backend.js';
import type { Feature, IndexFeature, Manifest } from './manifest.js';
import { parseManifest } from './manifest.js';
import { readModelFiles } from './modelFiles.js';
import { loadTfModel } from './tfModel.js';
import type { ModelTensorInfo } from './tensorTypes.js';

/**
 * A table's columns as `model init` needs them. `TableProfile` from db/columnProfile.ts fits, without
 * model/ depending on db/.
 */
export interface ProfileSummary {
  table: string;
  key: string;
  rows: number;
  columns: readonly ProfiledColumn[];
  skipped: readonly { name: string; type: string }[];
}

export type ProfiledColumn =
  | {
      kind: 'number';
      name: string;
      type: string;
      nulls: number;
      mean: number | null;
      std: number | null;
      min: number | null;
      max: number | null;
      nonFinite: number;
      beyondFloat32: number;
    }
  | { kind: 'boolean'; name: string; type: string; nulls: number; trues: number; falses: number }
  | { kind: 'text'; name: string; type: string; nulls: number; categories: readonly { value: string; count: number }[]; truncated: boolean };

/** The model's side of a draft: its inputs and output names, read from model.json without a manifest. */
export interface ModelSignature {
  format: string;
  inputs: readonly ModelTensorInfo[];
  outputNames: readonly string[];
}

export interface Draft {
  manifest: Manifest;
  /** What a person should look at before using the draft (also in `training.review`). */
  notes: string[];
}

/** Reads the model's inputs and outputs (on the cpu backend: nothing is run). */
export async function readModelSignature(dir: string): Promise<ModelSignature> {
  const files = await readModelFiles(dir);
  await selectBackend('cpu');
  const modelFile = path.join(dir, 'model.json');
  try {
    const artifacts = await tf.io.getModelArtifactsForJSON(files.modelJson, async (groups) => [groups.flatMap((g) => g.weights), files.weightData]);
    const model = await loadTfModel(artifacts);
    const signature = { format: model.format, inputs: model.inputs, outputNames: model.outputNames };
    model.dispose();
    return signature;
  } catch (err) {
    throw new UsageError(`${modelFile}: TF.js cannot load the model: ${(err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ')}`, {
      cause: err,
    });
  }
}

/**
 * Drafts a manifest for the model from the table's profile. Columns go to the model's inputs in the
 * order given: an int32 input takes a text column as `index` (the column named like the input first,
 * e.g. `segment` for `segment_id`), float inputs take the rest: numbers `standardize`d with the data's
 * mean and std (or `raw`), booleans, text `one_hot` (categories most frequent first). A column with NULLs gets a `fill` (the mean, the most common
 * value or category; the unknown id for an index). The result passes parseManifest; whether its widths
 * fit the model is in the notes (and `model inspect` says it exactly).
 */
export interface DraftOptions {
  /** `raw` for a model that normalizes its own inputs (a Normalization layer, folded weights). */
  numbers: 'standardize' | 'raw';
}

export function draftManifest(dir: string, profile: ProfileSummary, model: ModelSignature, opts: DraftOptions): Draft {
  const notes: string[] = [];
  const usable = profile.columns.filter((c) => {
    if (c.kind === 'number' && c.mean === null) notes.push(`${c.name}: no finite value in ${profile.rows} rows; left out`);
    else if (c.kind === 'text' && c.categories.length === 0) notes.push(`${c.name}: only NULLs; left out`);
    else return true;
    return false;
  });
  for (const s of profile.skipped) notes.push(`${s.name} (${s.type}): not a number, boolean or text column; left out`);
  const inputs = model.inputs.length > 0 ? model.inputs : [{ name: 'input', dtype: 'float32', shape: undefined }];
  const assigned = new Map<string, string>(); // column -> input name
  // int32 inputs first: each takes as many text columns as it is wide, a column named like it first.
  for (const input of inputs.filter((i) => i.dtype === 'int32')) {
    const width = input.shape === undefined || input.shape.length < 2 ? 1 : (input.shape[1] ?? 1);
    const free = usable.filter((c) => c.kind === 'text' && !assigned.has(c.name));
    const stem = input.name.replace(/(_ids?|_index|_idx)$/i, '').toLowerCase();
    free.sort((a, b) => Number(b.name.toLowerCase() === stem) - Number(a.name.toLowerCase() === stem));
    for (const c of free.slice(0, width)) assigned.set(c.name, input.name);
  }
  const floatInputs = inputs.filter((i) => i.dtype !== 'int32');
  if (floatInputs.length > 1)
    notes.push(
      `the model has ${floatInputs.length} float inputs (${floatInputs.map((i) => i.name).join(', ')}): every other column went to ${floatInputs[0]!.name}; move features between them with features[].input`,
    );
  for (const c of usable) if (!assigned.has(c.name) && floatInputs[0] !== undefined) assigned.set(c.name, floatInputs[0].name);
  const named = inputs.length > 1;
  const features: Feature[] = [];
  // Features in model input order, each input's in the order the columns were given.
  for (const input of inputs) {
    for (const c of usable) {
      if (assigned.get(c.name) !== input.name) continue;
      const feature = draftFeature(c, input.dtype === 'int32', profile.rows, opts.numbers, notes);
      if (named) feature.input = input.name;
      features.push(feature);
    }
  }
  for (const c of usable) if (!assigned.has(c.name)) notes.push(`${c.name}: no model input left for it; left out`);
  if (features.length === 0) throw new UsageError(`${profile.table}: no column to draft a feature from (${notes.join('; ')})`);
  checkWidths(inputs, features, notes);
  if (model.outputNames.length > 1)
    notes.push(`the model has ${model.outputNames.length} outputs (${model.outputNames.join(', ')}): output.from is the first; name the one that is the score`);
  const output: Manifest['output'] = { name: 'score', description: 'TODO: what the score means (e.g. churn probability in the next 90 days)', unit: undefined };
  if (model.outputNames.length > 1) output.from = model.outputNames[0]!;
  const manifest = {
    name: path.basename(path.resolve(dir)),
    version: '0.1.0',
    // Until a person deletes it, `scorejob run` refuses the manifest (src/model/load.ts).
    draft: true,
    description:
      `DRAFT written by scorejob model init from ${profile.table} (${profile.rows} rows): a person must review it before any run ` +
      '(each transform as in training: standardize or raw, categories and their order, fills, the output), then replace this description ' +
      'and delete "draft": true (scorejob run refuses a draft; --dry-run tries it).',
    source: { table: profile.table, key: profile.key },
    features,
    output: { name: output.name, description: output.description, ...(output.from === undefined ? {} : { from: output.from }) },
    training: {
      drafted_by: 'scorejob model init',
      table: profile.table,
      rows: profile.rows,
      review: notes,
      columns: Object.fromEntries(profile.columns.map((c) => [c.name, columnStats(c, profile.rows)])),
    },
  };
  // The draft is what the parser accepts: a draft `model inspect` refused would be no help.
  return { manifest: parseManifest(JSON.parse(JSON.stringify(manifest)), path.join(dir, 'manifest.json')), notes };
}

function draftFeature(c: ProfiledColumn, int32: boolean, rows: number, numbers: DraftOptions['numbers'], notes: string[]): Feature {
  const nullNote = (fill: string) => notes.push(`${c.name}: ${pct(c.nulls, rows)} NULL; fill ${fill} suggested`);
  switch (c.kind) {
    case 'number': {
      if (c.nonFinite > 0) notes.push(`${c.name}: ${c.nonFinite} NaN or infinite values (such rows are rejected)`);
      if (c.beyondFloat32 > 0) {
        const values = c.beyondFloat32 === 1 ? '1 value' : `${c.beyondFloat32} values`;
        notes.push(
          `${c.name}: ${values} beyond float32 (|value| > 3.4e38) left out of the statistics; the model cannot take them: a run rejects such rows (non_finite)`,
        );
      }
      if (numbers === 'raw') {
        const f: Feature = { column: c.name, transform: 'raw', min: c.min!, max: c.max! };
        if (c.nulls > 0) {
          f.fill = c.mean!;
          nullNote(`${c.mean} (the mean)`);
        }
        return f;
      }
      let std = c.std!;
      if (!(std > 0)) {
        notes.push(`${c.name}: constant (${c.mean}); std 1 used`);
        std = 1;
      }
      const f: Feature = { column: c.name, transform: 'standardize', mean: c.mean!, std, min: c.min!, max: c.max! };
      if (c.nulls > 0) {
        f.fill = c.mean!;
        nullNote(`${c.mean} (the mean)`);
      }
      return f;
    }
    case 'boolean': {
      const f: Feature = { column: c.name, transform: 'boolean' };
      if (c.nulls > 0) {
        f.fill = c.trues > c.falses;
        nullNote(`${f.fill} (the most common value)`);
      }
      return f;
    }
    case 'text': {
      const categories = c.categories.map((x) => x.value);
      // A category's position is its one_hot column or index id: an order other than training's scores silently wrong.
      const meaning = int32 ? 'id' : 'one_hot position';
      notes.push(
        `${c.name}: categories ordered by frequency in this table (most frequent first), not by training: each category's ${meaning} must be the one the model was trained with; reorder categories to match`,
      );
      if (c.truncated)
        notes.push(`${c.name}: more than ${categories.length} distinct values; the ${categories.length} most frequent kept (the rest count as unknown)`);
      if (int32) {
        const f: IndexFeature = { column: c.name, transform: 'index', categories };
        if (c.nulls > 0) {
          f.fill = categories.length;
          nullNote(`${categories.length} (the unknown id)`);
        }
        return f;
      }
      const f: Feature = { column: c.name, transform: 'one_hot', categories };
      if (c.nulls > 0) {
        f.fill = categories[0]!;
        nullNote(`"${categories[0]}" (the most frequent)`);
      }
      return f;
    }
  }
}

function checkWidths(inputs: readonly ModelTensorInfo[], features: readonly Feature[], notes: string[]): void {
  for (const input of inputs) {
    const expected = input.shape === undefined ? null : input.shape.length === 1 ? 1 : (input.shape[1] ?? null);
    const mine = features.filter((f) => (f.input ?? inputs[0]!.name) === input.name);
    const width = mine.reduce((w, f) => w + (f.transform === 'one_hot' ? f.categories.length : 1), 0);
    if (expected !== null && expected !== width)
      notes.push(`input ${input.name}: the model expects ${expected} values, the draft gives ${width}: add, remove or change features`);
  }
}

function columnStats(c: ProfiledColumn, rows: number): Record<string, unknown> {
  const base = { type: c.type, null_fraction: rows === 0 ? 0 : c.nulls / rows };
  switch (c.kind) {
    case 'number':
      return { ...base, mean: c.mean, std: c.std, min: c.min, max: c.max, non_finite: c.nonFinite, beyond_float32: c.beyondFloat32 };
    case 'boolean':
      return { ...base, true_fraction: rows === 0 ? 0 : c.trues / rows };
    case 'text':
      return {
        ...base,
        categories: c.categories.length,
        more_categories: c.truncated,
        top: Object.fromEntries(c.categories.slice(0, 10).map((x) => [x.value, x.count])),
      };
  }
}

function pct(n: number, of: number): string {
  return `${of === 0 ? 0 : Math.round((n / of) * 1000) / 10}%`;
}

/** Refuses, before any work, a directory that is missing or already has a manifest.json (unless `force`). */
export async function checkDraftTarget(dir: string, force: boolean): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new UsageError(`model directory ${dir} does not exist (model init DIR: the folder holding model.json)`);
  const file = path.join(dir, 'manifest.json');
  if (!force && (await stat(file).catch(() => undefined)) !== undefined) {
    throw new UsageError(`${file} exists; scorejob model init does not overwrite it (pass --force to replace it)`);
  }
}

/** Writes DIR/manifest.json (the caller checked the target with {@link checkDraftTarget}). Returns the file. */
export async function writeDraft(dir: string, draft: Draft): Promise<string> {
  const file = path.join(dir, 'manifest.json');
  await writeFile(file, `${JSON.stringify(draft.manifest, null, 2)}\n`);
  return file;
}
