import { Option, type Command } from 'commander';
import { UsageError } from '../errors.js';
import type { FeaturePublish } from '../features/feature.js';
import { featureCli } from '../features/settings.js';
import { action } from './action.js';
import { runFeatureMetrics } from '../features/reports.js';
import { metricsFile, metricsPush, onPublishCommand, option, read, sourceOf } from './options.js';
import { readObserveOptions } from './runOptions.js';

/** The features' variants of `publish` (a feature's part of the run published instead of the run). */
const variants = featureCli.flatMap((f) => (f.publish ? [f.publish] : []));

/** The variant the command's flags chose, if any; a variant's setting given without its flag is refused (it would be ignored). */
function chosenVariant(cmd: Command): FeaturePublish | undefined {
  let chosen: FeaturePublish | undefined;
  for (const v of variants) {
    if (cmd.getOptionValue(new Option(v.flag.flags).attributeName()) === true) {
      chosen ??= v;
      continue;
    }
    for (const s of v.settings) if (sourceOf(cmd, s) === 'cli') throw new UsageError(`${s.flags.split(' ')[0]} applies to publish ${v.flag.flags} only`);
  }
  return chosen;
}

/** `scorejob publish <run-id> --force --reason TEXT`: a gated run, published after a person has looked at it; a feature's variant (its flag): the feature's part of the run. */
export function registerPublish(program: Command): void {
  const cmd = program
    .command('publish')
    .description(
      `publish a run that a publish gate (--max-reject-ratio, --max-psi) stopped, after a person has looked at it${variants.map((v) => `; ${v.says}`).join('')}`,
    )
    .argument('<run-id>', 'the run (see `scorejob runs show <run-id>`)')
    .option('--force', 'publish it although it breached a gate (needs --reason)', false)
    .option('--reason <text>', 'why, recorded on the publication (published_runs.reason); required with --force');
  for (const v of variants) {
    cmd.option(v.flag.flags, v.flag.description, false);
    for (const s of v.settings) cmd.addOption(option(s));
  }
  cmd
    .addOption(option(metricsFile, 'write Prometheus metrics (textfile collector) when done'))
    .addOption(option(metricsPush, 'push the same metrics to this Prometheus Pushgateway when done (replacing the group job="scorejob", model=NAME)'))
    .addOption(option(onPublishCommand))
    .action(
      action(async (ctx, runId: string, cmd: Command) => {
        const { metricsFile, metricsPush } = readObserveOptions(cmd);
        const flags = cmd.opts<{ force: boolean; reason?: string }>();
        const variant = chosenVariant(cmd);
        if (variant) {
          const opts = { onPublishCommand: read(cmd, onPublishCommand), force: flags.force, reason: flags.reason };
          await variant.publish(ctx, runId, { ...opts, read: (s) => read(cmd, s) });
          return;
        }
        const { describeReasonsLost } = await import('../publish/reasonsLost.js');
        const why = flags.reason === undefined ? '' : `; reason: ${flags.reason.trim()}`;
        const r = await (
          await import('../publish/forcePublish.js')
        ).forcePublish({ ...ctx, metricsFile, metricsPush, featureMetrics: runFeatureMetrics }, runId, {
          force: flags.force,
          reason: flags.reason,
          onPublishCommand: read(cmd, onPublishCommand),
          // Imported only for such a run: the features load the model backends, which publish never needs.
          partOf: async (run) => (await import('../features/index.js')).partOfAnother(run, 'publish'),
        });
        const lost = r.reasonsLost === undefined ? '' : describeReasonsLost(ctx.config.schema, r.reasonsLost);
        ctx.log[lost === '' ? 'info' : 'warn'](
          {
            run_id: r.runId,
            model: r.modelName,
            status: 'succeeded',
            forced_publish: true,
            reason: r.reason,
            rows_scored: r.rowsScored,
            rows_rejected: r.rowsRejected,
            psi: r.psi,
            model_version: r.modelVersion,
            dropped_runs: r.droppedRuns,
            reasons_lost_from_run: r.reasonsLost?.fromRunId,
          },
          `run ${r.runId} published to ${ctx.config.schema}.customer_scores (model_name = '${r.modelName}') by force: ${r.rowsScored} customers, model ${r.modelName} ${r.modelVersion}${why}${lost}`,
        );
      }),
    );
}
