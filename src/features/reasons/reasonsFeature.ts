import { combineSidecars } from '../../chunks/chunkLoop.js';
import { reasonsMethod, type Explainer } from '../../model/explainer.js';
import { describeFewerReasons } from '../../publish/reasonsLost.js';
import type { RunFeature, RunFeatureDefinition, RunScope } from '../feature.js';
import { reasonsSidecar } from './reasonsSidecar.js';
import { explainerFor } from './reasonsSetup.js';

/**
 * `--reasons K` (docs/analysts.md): each scored customer's K strongest features, written beside the
 * scores in each chunk's transaction into the run's reasons table. Every run has the feature: one
 * without reasons that replaces one with them says so when it publishes.
 */
export const reasons: RunFeatureDefinition = {
  name: 'reasons',
  forStart: (opts, model) => reasonsFeature(explainerFor(model, opts.reasons)),
  forResume: (params, model) => reasonsFeature(explainerFor(model, params.reasons?.k)),
  forWorker: ({ run, model }) => reasonsFeature(explainerFor(model, run.params.reasons?.k)),
};

function reasonsFeature(explainer: Explainer | undefined): RunFeature {
  const always: RunFeature = { name: 'reasons', published: warnFewerReasons };
  if (!explainer) return always;
  return {
    ...always,
    describe: () => ({ fields: { reasons: explainer.k } }),
    spec: async () => ({ reasons: { k: explainer.k, features: [...explainer.features], space: explainer.space, method: reasonsMethod } }),
    // Created (idempotent: a resume finds it) and, unless the run is dry, attached while empty, before any chunk.
    prepareStorage: (s) => s.ledger.storage.ensureReasonsTable(s.client, s.runId, !s.params.dryRun, s.log),
    chunkRead: (read, s) => ({ ...read, sidecar: combineSidecars([read.sidecar, reasonsSidecar(explainer, s.ledger, s.runId)]) }),
  };
}

/** A run that leaves readers fewer customers with reasons than the run it replaced says so (published_runs.fewer_reasons). */
async function warnFewerReasons(s: RunScope): Promise<void> {
  const fewer = await s.ledger.publications.fewerReasons(s.client, s.model.manifest.name);
  if (fewer) s.log.warn({ rows_with_reasons: fewer.now, previous_rows_with_reasons: fewer.before }, describeFewerReasons(s.ledger.schema, s.runId, fewer));
}
