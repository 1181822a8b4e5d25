import type { OnlyNewParams } from '../../ledger/ledger.js';
import type { LoadedModel } from '../../model/load.js';
import type { RunFeature, RunFeatureDefinition } from '../feature.js';
import { createOnlyNewView, dropOnlyNewView, freezeOnlyNew, prepareOnlyNew } from './onlyNew.js';

/**
 * `--only-new` (src/features/only-new/onlyNew.ts): a layer over the last full run that rescores the
 * new and changed customers and carries the others' scores. A full run has the feature too: it keeps
 * its percentile histogram, where the layers that will lie on it start theirs.
 */
export const onlyNew: RunFeatureDefinition = {
  name: 'only-new',
  forStart: (opts, model) => (opts.onlyNew ? startedLayer(model) : fullRun()),
  forResume: (params) => (params.onlyNew ? resumedLayer(params.onlyNew) : fullRun()),
  forWorker: ({ run }) => (run.params.onlyNew ? { name: 'only-new', describe: () => ({ fields: { only_new: true } }) } : undefined),
};

function fullRun(): RunFeature {
  return {
    name: 'only-new',
    describe: () => ({ fields: { kind: 'full' } }),
    ranked: (s, histogram) => s.ledger.onlyNew.recordHistogram(s.client, s.runId, histogram.toSparse()),
  };
}

/** A new layer: its base run and view of the source are chosen under the run lock, as its part of the spec. */
function startedLayer(model: LoadedModel): RunFeature {
  let chosen: OnlyNewParams | undefined;
  const layer = onlyNewLayer(() => chosen as OnlyNewParams);
  return {
    ...layer,
    // Refused (exit 2) without a published run to carry forward.
    spec: async (client, ledger) => {
      const part = await prepareOnlyNew(client, ledger, model);
      chosen = part.onlyNew;
      return part;
    },
    created: (c, run) => run.ledger.onlyNew.markOnlyNew(c, run.runId, (chosen as OnlyNewParams).baseRunId),
  };
}

/** A resumed layer: its view of the source is made again (on its frozen rows once it froze them). */
function resumedLayer(p: OnlyNewParams): RunFeature {
  return {
    ...onlyNewLayer(() => p),
    resumed: async (s) => {
      await createOnlyNewView(s.client, s.ledger, { p, key: s.params.source.key, modelDir: s.params.modelDir, runId: s.runId });
    },
  };
}

function onlyNewLayer(params: () => OnlyNewParams): RunFeature {
  let carried = 0;
  return {
    name: 'only-new',
    describe: () => ({
      fields: { kind: 'only_new', base_run_id: params().baseRunId },
      words: ` (only new customers; the others' scores carried forward from run ${params().baseRunId})`,
    }),
    // What the run rescores is frozen and the rest carried from the base run, in one snapshot, before it plans.
    beforePlan: async (s) => {
      const t0 = performance.now();
      carried = await freezeOnlyNew(s, params());
      s.timings.add('plan', performance.now() - t0);
    },
    // With no new customer the run still publishes: every score is carried forward.
    allowsEmptySource: true,
    // Every chunk is done: the frozen copy of the rows it rescored (source data) is not needed any more.
    chunksDone: (s) => s.ledger.storage.dropFrozenRows(s.client, s.runId),
    carried: () => ({ rows: carried, baseRunId: params().baseRunId }),
    ended: (s) => dropOnlyNewView(s.client, s.ledger, params(), s.log),
  };
}
