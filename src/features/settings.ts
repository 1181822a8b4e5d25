import { challengerCli } from './challenger/challengerSettings.js';
import type { FeatureCli } from './feature.js';

/**
 * The features' own options of the CLI, one entry per feature that has any (its folder declares them).
 * Apart from the features' registration (index.ts) because the CLI builds every command from it at start,
 * and the features themselves load the model backends, which only the commands that score need.
 */
export const featureCli: readonly FeatureCli[] = [challengerCli];

/** The settings of `run` the features declare, in registration order. */
export const featureRunSettings = featureCli.flatMap((f) => (f.run ? [f.run.setting] : []));
