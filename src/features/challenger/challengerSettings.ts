import { resolve } from 'node:path';
import { parseNumberFlag } from '../../config.js';
import type { DefaultedSetting, Setting } from '../../setting.js';
import type { FeatureCli } from '../feature.js';
import { defaultComparisonLimits } from './comparison.js';

/** `--challenger DIR` of `run` and `work`: a second model scored beside the run's in the same pass (docs/analysts.md "A challenger beside the champion"). */
export const challenger: Setting<string> = {
  flags: '--challenger <dir>',
  description:
    'also score this model directory in the same pass, into a sibling run of its own (never published by the run; compare with `runs show`, publish with `publish <run> --challenger`)',
  env: 'SCOREJOB_CHALLENGER',
  blankIsUnset: true,
  forward: 'path',
  parse: (value) => resolve(value),
};

/** A limit of the comparison gate of `publish --challenger` (comparison.ts), flag only. */
function limit(flags: string, description: string, value: number, range: [number, number]): DefaultedSetting<number> {
  return { flags, description, default: String(value), parse: (v, name) => parseNumberFlag(v, name, range[0], range[1]) };
}

/** `publish --challenger`: the limits of the comparison with the champion, one setting each. */
export const comparisonLimitSettings = {
  minCorrelation: limit(
    '--min-correlation <r>',
    "with --challenger: refuse (without --force) a challenger whose scores' correlation with the champion's is under this",
    defaultComparisonLimits.minCorrelation,
    [-1, 1],
  ),
  minTopDecileOverlap: limit(
    '--min-top-decile-overlap <f>',
    "with --challenger: refuse (without --force) a challenger that keeps less than this share of the champion's top decile in its own",
    defaultComparisonLimits.minTopDecileOverlap,
    [0, 1],
  ),
  maxPsi: limit(
    '--max-psi-vs-champion <x>',
    "with --challenger: refuse (without --force) a challenger whose scores' PSI over the champion's deciles exceeds this",
    defaultComparisonLimits.maxPsi,
    [0, 1000],
  ),
} as const satisfies Record<string, DefaultedSetting<number>>;

/** The challenger's options of `run` (and `schedule`) and of `work`. */
export const challengerCli: FeatureCli = {
  name: 'challenger',
  run: { setting: challenger, options: (dir) => ({ challengerDir: dir }) },
  work: {
    // The flag only (not SCOREJOB_CHALLENGER): the challenger is the run's, and a worker's environment may be shared with runs that have none.
    setting: {
      ...challenger,
      env: undefined,
      description:
        "the challenger's model directory, for a run started with --challenger whose files live elsewhere here; default: the run's own (its files' sha256 must match the challenger run's)",
    },
  },
  // `publish <run> --challenger`: the run's challenger is published instead of the run.
  publish: {
    flag: { flags: '--challenger', description: "publish the scores of the run's challenger (`run --challenger DIR`) instead of the run's" },
    says: 'or, with --challenger, the challenger a run scored beside it',
    settings: Object.values(comparisonLimitSettings),
    async publish(ctx, runId, o) {
      const l = comparisonLimitSettings;
      const limits = { minCorrelation: o.read(l.minCorrelation), minTopDecileOverlap: o.read(l.minTopDecileOverlap), maxPsi: o.read(l.maxPsi) };
      const { publishChallengerCommand } = await import('./publishCommand.js');
      await publishChallengerCommand(ctx, runId, { onPublishCommand: o.onPublishCommand, force: o.force, reason: o.reason, limits });
    },
  },
};
