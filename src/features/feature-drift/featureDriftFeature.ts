import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { combineSidecars, type ChunkSidecar } from '../../chunks/chunkLoop.js';
import { GateError, UsageError } from '../../errors.js';
import type { RunParams } from '../../ledger/ledger.js';
import type { LoadedModel } from '../../model/load.js';
import type { FeatureDistribution } from '../../stats/featurePsi.js';
import type { RunFeature, RunFeatureDefinition, StatisticsScope } from '../feature.js';
import { baselineFile, type FeatureBaseline } from './baseline.js';
import { binLayout, countBatch, type BinLayout } from './binCounter.js';
import { DriftStore } from './driftStore.js';
import { driftSummary, featureDriftRows, featurePsiGateBreach, topDistributions } from './featureDrift.js';

/**
 * Per-feature drift (docs/models.md "Feature drift"): when the model directory has a baseline.json, each
 * chunk counts every feature's values into the baseline's bins and stores the counts in the chunk's
 * transaction; at statistics time the counts are merged and each feature's PSI against the baseline and
 * the previous published run is stored on the run, with the `--max-feature-psi` gate.
 */
export const featureDrift: RunFeatureDefinition = {
  name: 'feature-drift',
  forStart: async (opts, model, env) => {
    if (opts.onlyNew) {
      // An only-new layer reads the new and changed customers only: a biased sample that would always look drifted.
      if (opts.maxFeaturePsi !== undefined)
        env.log.info(
          { max_feature_psi: opts.maxFeaturePsi },
          'an only-new run reads only the new and changed customers: feature drift is not measured and the --max-feature-psi gate does not apply',
        );
      return undefined;
    }
    const loaded = await loadBaseline(model);
    if (!loaded) {
      if (opts.maxFeaturePsi === undefined) return undefined;
      model.dispose();
      throw new UsageError(
        `--max-feature-psi needs the model's feature baseline, and ${join(model.dir, baselineFile)} does not exist: run \`scorejob model baseline ${model.dir} --table <training table>\` first`,
      );
    }
    return driftFeature(loaded, { baselineSha256: loaded.sha256, maxFeaturePsi: opts.maxFeaturePsi ?? null });
  },
  forResume: (params, model) => fromParams(params, model),
  forWorker: ({ run, model }) => fromParams(run.params, model),
};

interface LoadedBaseline {
  baseline: FeatureBaseline;
  sha256: string;
}

async function loadBaseline(model: LoadedModel): Promise<LoadedBaseline | undefined> {
  const file = join(model.dir, baselineFile);
  const again = `write it again with \`scorejob model baseline ${model.dir} --table <training table>\``;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    model.dispose();
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  let baseline: FeatureBaseline;
  try {
    baseline = JSON.parse(text) as FeatureBaseline;
  } catch (err) {
    model.dispose();
    throw new UsageError(`${file} is not valid JSON: ${again}`, { cause: err });
  }
  if (!Array.isArray(baseline.features) || !baseline.features.every(isDistribution)) {
    model.dispose();
    throw new UsageError(`${file} is not a feature baseline (each feature needs its column, kind, shares and nullShare): ${again}`);
  }
  return { baseline, sha256: createHash('sha256').update(text).digest('hex') };
}

function isDistribution(d: unknown): d is FeatureDistribution {
  if (typeof d !== 'object' || d === null) return false;
  const f = d as Partial<Record<string, unknown>>;
  const bins = f.kind === 'numeric' ? f.edges : f.kind === 'categorical' ? f.categories : undefined;
  return (
    typeof f.column === 'string' && Array.isArray(bins) && Array.isArray(f.shares) && f.shares.length === bins.length + 1 && typeof f.nullShare === 'number'
  );
}

/** A resume or a joined worker counts into the same bins as the run's other chunks, or not at all. */
async function fromParams(params: Readonly<RunParams>, model: LoadedModel): Promise<RunFeature | undefined> {
  const spec = params.featureDrift;
  if (!spec) return undefined;
  const loaded = await loadBaseline(model);
  if (!loaded || loaded.sha256 !== spec.baselineSha256) {
    model.dispose();
    throw new UsageError(
      `${join(model.dir, baselineFile)} ${loaded ? 'changed' : 'is gone'} since the run started (sha256 ${spec.baselineSha256.slice(0, 16)}…): put that baseline back, or start a new run`,
    );
  }
  return driftFeature(loaded, spec);
}

function driftFeature(loaded: LoadedBaseline, spec: NonNullable<RunParams['featureDrift']>): RunFeature {
  const features = loaded.baseline.features;
  const layout = binLayout(features);
  return {
    name: 'feature-drift',
    describe: () => ({ fields: { feature_drift: features.length, ...(spec.maxFeaturePsi !== null ? { max_feature_psi: spec.maxFeaturePsi } : {}) } }),
    spec: async () => ({ featureDrift: spec }),
    chunkRead: (read, s) => ({ ...read, sidecar: combineSidecars([read.sidecar, driftSidecar(features, layout, new DriftStore(s.ledger.schema), s.runId)]) }),
    statistics: (s) => recordDrift(s, { features, layout, sha256: loaded.sha256, maxFeaturePsi: spec.maxFeaturePsi }),
  };
}

/** Counts each chunk into one reused array; the chunk's copy is made at seal (the next chunk is counted while this one is written). */
function driftSidecar(features: readonly FeatureDistribution[], layout: BinLayout, store: DriftStore, runId: string): ChunkSidecar {
  const counts = new Float64Array(layout.total);
  return {
    async prepare(_x, _rows, _scores, batch) {
      counts.fill(0);
      countBatch(batch, features, layout, counts);
    },
    seal(_keys, _accepted, chunkNo) {
      const own = Array.from(counts);
      return (c) => store.insertChunkCounts(c, runId, chunkNo, own);
    },
  };
}

async function recordDrift(
  s: StatisticsScope,
  d: { features: readonly FeatureDistribution[]; layout: BinLayout; sha256: string; maxFeaturePsi: number | null },
): Promise<void> {
  const store = new DriftStore(s.ledger.schema);
  const merged = await store.mergedCounts(s.client, s.runId, d.layout.total);
  // The run readers saw when this one started (the --max-psi gate's baseline), if it counted on the same bins.
  const previousRunId = s.statistics.drift.baseline_run_id;
  const previous = previousRunId ? await store.runCounts(s.client, previousRunId, d.sha256) : new Map<number, number[]>();
  const rows = featureDriftRows(d.features, d.layout, merged, { runId: previousRunId, counts: previous });
  await store.saveRunDrift(s.client, s.runId, d.sha256, rows);
  const summary = { ...driftSummary(rows, d.sha256, previousRunId), distributions: topDistributions(rows, d.features, previous) };
  s.stats.feature_drift = summary;
  const top = summary.features[0];
  s.log.info({ top_feature: top?.feature, top_feature_psi: top?.psi_baseline ?? null, previous_run_id: summary.previous_run_id }, 'feature drift recorded');
  const breach = featurePsiGateBreach(summary, d.maxFeaturePsi);
  if (breach) throw new GateError(`${breach}; the scores are kept unpublished for inspection (\`scorejob runs show ${s.runId}\`)`);
}
