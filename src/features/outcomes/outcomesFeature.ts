import { describeDbError } from '../../db/describeError.js';
import { GateError, UsageError } from '../../errors.js';
import type { RunFeature, RunFeatureDefinition } from '../feature.js';
import { performanceGate } from './performanceGate.js';
import { syncOutcomes } from './syncOutcomes.js';

/**
 * The manifest's `outcomes` (docs/outcomes.md) in the run: `--min-auc` gates the publish on the realised
 * AUC of the model's newest mature run, and once a run published, the outcomes that matured since the last
 * sync are joined to the kept runs (`scorejob outcomes sync`; cheap when nothing new matured). A sync that
 * fails is logged, never fails a run that already published.
 */
export const outcomes: RunFeatureDefinition = {
  name: 'outcomes',
  forStart: (opts, model) => outcomesFeature(model.manifest.outcomes !== undefined, opts.modelDir, opts.minAuc),
  forResume: (params, model) => outcomesFeature(model.manifest.outcomes !== undefined, params.modelDir, params.minAuc),
};

function outcomesFeature(declared: boolean, modelDir: string, minAuc: number | undefined): RunFeature | undefined {
  if (!declared) {
    if (minAuc !== undefined)
      throw new UsageError(`--min-auc: the manifest in ${modelDir} declares no outcomes, so there is no realised AUC to gate on (docs/outcomes.md)`);
    return undefined;
  }
  return {
    name: 'outcomes',
    spec: async () => (minAuc === undefined ? {} : { minAuc }),
    statistics: async (s) => {
      if (minAuc === undefined) return;
      const breach = await performanceGate(s.client, s.ledger, s.model.manifest.name, minAuc, { runId: s.runId });
      if (breach) throw new GateError(breach);
    },
    published: async (s) => {
      try {
        const synced = await syncOutcomes(s.pool, { schema: s.ledger.schema, modelDir, log: s.log });
        const changed = synced.filter((r) => r.outcome === 'synced').length;
        s.log.info({ outcome_runs: synced.length, outcome_runs_synced: changed }, `outcomes: ${changed} of ${synced.length} kept runs synced`);
      } catch (err) {
        s.log.warn(
          { err: describeDbError(err) },
          `outcomes not synced after the publish (${describeDbError(err)}); \`scorejob outcomes sync --model ${modelDir}\` tries again`,
        );
      }
    },
  };
}
