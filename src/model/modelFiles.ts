import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { io } from '@tensorflow/tfjs-core';
import { UsageError } from '../errors.js';

/** One file of a model directory. */
export interface ModelFile {
  /** Relative to the model directory, as model.json lists it. */
  name: string;
  bytes: number;
  /** Hex sha256 of the file's content. */
  sha256: string;
}

/** The raw content of a model directory, read and checked, before TF.js sees it. */
export interface ModelDirectory {
  /** Parsed manifest.json (not yet validated). */
  manifestJson: unknown;
  /** Parsed model.json with its structure checked. */
  modelJson: io.ModelJSON;
  /** All weight shards concatenated in weightsManifest order (what TF.js expects). */
  weightData: ArrayBuffer;
  /** manifest.json, model.json, then the shards in weightsManifest order. */
  files: ModelFile[];
  /** See {@link combinedSha256}. */
  sha256: string;
}

/**
 * The model's fingerprint (stored on each run; a resume refuses a changed model): the sha256 of the
 * `sha256sum`-style listing of its files in {@link ModelDirectory.files} order, so that
 * `cd DIR && sha256sum manifest.json model.json <shards in model.json order> | sha256sum` gives the same value.
 */
export function combinedSha256(files: readonly ModelFile[]): string {
  return sha256(Buffer.from(files.map((f) => `${f.sha256}  ${f.name}\n`).join('')));
}

/** Reads and checks manifest.json, model.json and every weight shard of `dir`. */
export async function readModelDirectory(dir: string): Promise<ModelDirectory> {
  const manifestBytes = await readModelFile(dir, 'manifest.json', 'the model directory needs a manifest.json next to model.json');
  const manifestJson = parseJson(manifestBytes, dir, 'manifest.json');
  const model = await readModelFiles(dir);
  const files: ModelFile[] = [describeFile('manifest.json', manifestBytes), ...model.files];
  return { manifestJson, modelJson: model.modelJson, weightData: model.weightData, files, sha256: combinedSha256(files) };
}

/** model.json and its weight shards without a manifest (what `model init` drafts one for). */
export async function readModelFiles(dir: string): Promise<Pick<ModelDirectory, 'modelJson' | 'weightData' | 'files'>> {
  const modelBytes = await readModelFile(dir, 'model.json', 'the model directory needs the model.json written by TF.js model.save() or the Keras converter');
  const modelJson = checkModelJson(parseJson(modelBytes, dir, 'model.json'), path.join(dir, 'model.json'));
  const files: ModelFile[] = [describeFile('model.json', modelBytes)];
  const shards: Buffer[] = [];
  for (const [g, group] of modelJson.weightsManifest.entries()) {
    const groupShards: Buffer[] = [];
    for (const shard of group.paths) {
      const bytes = await readModelFile(dir, safeRelative(dir, shard), 'model.json lists it in weightsManifest');
      groupShards.push(bytes);
      files.push(describeFile(shard, bytes));
    }
    checkGroupSize(dir, g, group, groupShards);
    shards.push(...groupShards);
  }
  const all = Buffer.concat(shards);
  // A view of exactly the shard bytes: Buffer.concat may return a slice of a larger pooled ArrayBuffer.
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return { modelJson, weightData, files };
}

async function readModelFile(dir: string, name: string, why: string): Promise<Buffer> {
  const file = path.join(dir, name);
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`${file} does not exist (${why})`, { cause: err });
    throw new UsageError(`${file} cannot be read: ${(err as Error).message}`, { cause: err });
  }
}

function parseJson(bytes: Buffer, dir: string, name: string): unknown {
  const text = bytes.toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    const truncated = looksTruncated(text, (err as Error).message) ? ' (truncated?)' : '';
    throw new UsageError(`${path.join(dir, name)} is not valid JSON${truncated}: ${(err as Error).message}`, { cause: err });
  }
}

/** A parse error at the very end of the text: the usual sign of a partly copied or partly written file. */
function looksTruncated(text: string, message: string): boolean {
  if (/end of (JSON )?input/i.test(message)) return true;
  const at = /position (\d+)/.exec(message);
  return at !== null && Number(at[1]) >= text.trimEnd().length - 1;
}

/** The parts of model.json scorejob relies on; the topology itself is TF.js's to check. */
function checkModelJson(json: unknown, file: string): io.ModelJSON {
  const fail = (what: string): never => {
    throw new UsageError(`${file}: ${what}`);
  };
  const o = isObject(json) ? json : fail('must hold a JSON object');
  if (!isObject(o.modelTopology)) fail('modelTopology is missing (is this a TF.js model.json?)');
  const groups = Array.isArray(o.weightsManifest) ? (o.weightsManifest as unknown[]) : fail('weightsManifest must be an array');
  groups.forEach((group, g) => {
    const at = `weightsManifest[${g}]`;
    const grp = isObject(group) ? group : fail(`${at} must be an object`);
    if (!Array.isArray(grp.paths) || grp.paths.some((p) => typeof p !== 'string' || p === '')) fail(`${at}.paths must be an array of file names`);
    const weights = Array.isArray(grp.weights) ? (grp.weights as unknown[]) : fail(`${at}.weights must be an array`);
    weights.forEach((spec, w) => {
      const ok =
        isObject(spec) && typeof spec.name === 'string' && Array.isArray(spec.shape) && spec.shape.every((d) => Number.isInteger(d) && (d as number) >= 0);
      if (!ok) fail(`${at}.weights[${w}] must have a name, a shape of whole numbers and a dtype`);
      const entry = spec as io.WeightsManifestEntry;
      if (weightBytes(entry) === undefined) fail(`${at}.weights[${w}] (${entry.name}) has dtype ${JSON.stringify(entry.dtype)}, which scorejob cannot read`);
    });
  });
  return o as unknown as io.ModelJSON;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Shard names come from a file: keep them inside the model directory. */
function safeRelative(dir: string, shard: string): string {
  const resolved = path.resolve(dir, shard);
  const root = path.resolve(dir);
  if (path.isAbsolute(shard) || !resolved.startsWith(root + path.sep)) {
    throw new UsageError(`${path.join(dir, 'model.json')}: weight file "${shard}" is outside the model directory`);
  }
  return path.relative(root, resolved);
}

/** The bytes a weight takes in a shard (quantized weights are stored narrower), or undefined for a dtype we cannot size. */
function weightBytes(spec: io.WeightsManifestEntry): number | undefined {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  const dtype: string = spec.quantization?.dtype ?? spec.dtype;
  const size: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2 };
  const per = size[dtype];
  return per === undefined ? undefined : count * per;
}

/** A group's shards together must hold exactly its weights (TF.js would otherwise misread or fail obscurely). */
function checkGroupSize(dir: string, g: number, group: io.WeightsManifestConfig[number], shards: Buffer[]): void {
  const expected = group.weights.reduce((sum, spec) => sum + weightBytes(spec)!, 0);
  const actual = shards.reduce((sum, b) => sum + b.length, 0);
  if (expected === actual) return;
  const names = group.paths.map((p) => path.join(dir, p)).join(', ');
  const what = group.paths.length === 1 ? names : `weight files of weightsManifest[${g}] (${names}) together`;
  throw new UsageError(
    `${what} ${group.paths.length === 1 ? 'has' : 'have'} ${actual} bytes, but model.json's weight specs need ${expected} bytes (wrong or partly copied file?)`,
  );
}

function describeFile(name: string, bytes: Buffer): ModelFile {
  return { name, bytes: bytes.length, sha256: sha256(bytes) };
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
