import type { InputChecks } from '../../model/manifestInputs.js';
import type { RunFeature, RunFeatureDefinition } from '../feature.js';
import { runInputChecks } from './runInputChecks.js';
import { skipChecksParam, type SkippedCheck } from './skipChecks.js';

/**
 * The manifest's `checks` (docs/models.md): row count and NULL rates against the last published full run,
 * and SQL assertions, in the run's snapshot before it plans. `--skip-check NAME --reason TEXT` is checked
 * before anything is written and stored in the run's params, so a resume skips the same checks.
 */
export const inputChecks: RunFeatureDefinition = {
  name: 'input-checks',
  forStart: (opts, model) => {
    const skips = skipChecksParam(model.manifest.checks, opts);
    return inputChecksFeature(model.manifest.checks, skips.skipChecks);
  },
  forResume: (params, model) => inputChecksFeature(model.manifest.checks, params.skipChecks),
};

function inputChecksFeature(checks: InputChecks | undefined, skips: SkippedCheck[] | undefined): RunFeature | undefined {
  if (checks === undefined) return undefined;
  return {
    name: 'input-checks',
    spec: async () => (skips === undefined ? {} : { skipChecks: skips }),
    planning: (s, snapshotId) =>
      runInputChecks(
        { pool: s.pool, client: s.client, config: { schema: s.ledger.schema }, runId: s.runId, params: s.params, model: s.model, log: s.log },
        snapshotId,
      ),
  };
}
