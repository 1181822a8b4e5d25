import type { RunFeatureDefinition } from '../feature.js';
import { ensureSourceReady } from './ensureSourceReady.js';

/**
 * `source.ready_when` (docs/models.md): a new run starts only once the manifest's readiness query holds.
 * Checked before the run lock and before anything is written; not ready is exit 75 (try later), past
 * `--ready-deadline` a stale_source failure. Resumes and joining workers do not ask again: the run they
 * continue already found its source ready.
 */
export const readiness: RunFeatureDefinition = {
  name: 'readiness',
  forStart: (opts, model, env) => {
    if (model.manifest.readyWhen === undefined) return undefined;
    return { name: 'readiness', check: (client) => ensureSourceReady(client, env, model.manifest, opts) };
  },
};
