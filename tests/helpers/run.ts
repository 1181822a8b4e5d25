import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type pg from 'pg';
import { defaultRunOptions, resolveConfig, type Config, type RunOptions } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { startRun, resumeRun, type RunResult } from '../../src/run/runJob.js';
import type { TestDatabase } from './db.js';

export const shippedModelDir = fileURLToPath(new URL('../../models/customer-value/', import.meta.url));
export const silentLog = createLogger({ level: 'silent', pretty: false });

export function testConfig(t: TestDatabase, schema = 'scoring'): Config {
  return resolveConfig({ schema, logLevel: 'silent', pretty: false }, { DATABASE_URL: t.url }, false);
}

export function runOptions(over: Partial<RunOptions> = {}): RunOptions {
  // Small chunks keep tests quick; everything else is what `scorejob run` defaults to.
  return { ...defaultRunOptions(shippedModelDir), chunkSize: 1000, ...over };
}

/** Runs `scorejob run` in-process (the library the CLI calls). */
export function runInProcess(t: TestDatabase, over: Partial<RunOptions> = {}, schema = 'scoring'): Promise<RunResult> {
  return startRun({ config: testConfig(t, schema), log: silentLog, stop: { requested: undefined } }, runOptions(over));
}

export function resumeInProcess(t: TestDatabase, runId: string): Promise<RunResult> {
  return resumeRun({ config: testConfig(t), log: silentLog, stop: { requested: undefined } }, runId);
}

/** A copy of a model directory in a temp folder, with its manifest changed by `edit`. */
export async function modelCopy(edit?: (manifest: Record<string, any>) => void, from = shippedModelDir): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sj-model-'));
  await cp(from, dir, { recursive: true });
  if (edit) {
    const file = join(dir, 'manifest.json');
    const manifest = JSON.parse(await readFile(file, 'utf8')) as Record<string, any>;
    edit(manifest);
    await writeFile(file, JSON.stringify(manifest, null, 2));
  }
  return dir;
}

interface ManifestFeature {
  column: string;
  transform: 'standardize' | 'one_hot' | 'boolean';
  mean?: number;
  std?: number;
  categories?: string[];
  fill?: number | string | boolean;
}

/**
 * The expected score of every scorable customer, computed independently of scorejob's pipeline:
 * rows read with a plain SELECT, features built from the manifest row by row, the model loaded by
 * tfjs-layers from the files and asked to predict. Keys as strings.
 */
export async function independentScores(pool: pg.Pool, modelDir: string = shippedModelDir): Promise<Map<string, number>> {
  const manifest = JSON.parse(await readFile(join(modelDir, 'manifest.json'), 'utf8')) as {
    features: ManifestFeature[];
    source: { table: string; key: string };
  };
  const modelJson = JSON.parse(await readFile(join(modelDir, 'model.json'), 'utf8')) as {
    modelTopology: object;
    weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  const specs = modelJson.weightsManifest.flatMap((g) => g.weights);
  const buffers = await Promise.all(modelJson.weightsManifest.flatMap((g) => g.paths).map((p) => readFile(join(modelDir, p))));
  const weights = Buffer.concat(buffers);
  const model = await tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: specs,
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
    }),
  );
  const cols = manifest.features.map((f) => `"${f.column}"::text AS "${f.column}"`).join(', ');
  const { rows } = await pool.query<Record<string, string | null>>(
    `SELECT "${manifest.source.key}"::text AS key, ${cols} FROM ${manifest.source.table} ORDER BY 1`,
  );
  const keys: string[] = [];
  const inputs: number[][] = [];
  for (const row of rows) {
    const x: number[] = [];
    let ok = true;
    for (const f of manifest.features) {
      let v: string | number | boolean | null = row[f.column] ?? null;
      if (v === null) {
        if (f.fill === undefined) {
          ok = false;
          break;
        }
        v = f.fill;
      }
      if (f.transform === 'standardize') {
        const n = Number(v);
        if (!Number.isFinite(n)) {
          ok = false;
          break;
        }
        x.push((n - (f.mean ?? 0)) / (f.std ?? 1));
      } else if (f.transform === 'boolean') {
        x.push(v === true || v === 'true' ? 1 : 0);
      } else {
        for (const c of f.categories ?? []) x.push(c === String(v) ? 1 : 0);
      }
    }
    if (ok) {
      keys.push(row.key as string);
      inputs.push(x);
    }
  }
  const out = new Map<string, number>();
  if (inputs.length === 0) return out;
  const y = model.predict(tf.tensor2d(inputs), { batchSize: inputs.length }) as tf.Tensor;
  const scores = await y.data();
  y.dispose();
  model.dispose();
  keys.forEach((k, i) => out.set(k, scores[i] as number));
  return out;
}

/**
 * Takes a (dry) run's chunks back to pending and the run back to running: every chunk unclaimed, no
 * attempt, no failure — the state a shared run's chunks are in before any worker claims one.
 */
export function reopenChunks(pool: pg.Pool, runId: string): Promise<unknown> {
  return pool.query(
    `UPDATE scoring.score_chunks SET status = 'pending', attempts = 0, claim_token = NULL, lease_until = NULL, failed = false, last_error = NULL, attempts_at_start = 0 WHERE run_id = $1;
     UPDATE scoring.score_runs SET status = 'running' WHERE run_id = $1`.replaceAll('$1', String(BigInt(runId))),
  );
}
