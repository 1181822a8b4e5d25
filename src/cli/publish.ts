import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { ComparisonLimits } from '../features/challenger/comparison.js';
import { comparisonLimitSettings, publishChallengerFlag } from '../features/challenger/challengerSettings.js';
import { action } from './action.js';
import { runFeatureMetrics } from '../features/reports.js';
import { metricsFile, metricsPush, onPublishCommand, option, read, sourceOf } from './options.js';
import { readObserveOptions } from './runOptions.js';

const limitSettings = Object.values(comparisonLimitSettings);

/** The comparison limits, checked; one given without --challenger is refused (it would be ignored). */
function readLimits(cmd: Command, challenger: boolean): ComparisonLimits {
  for (const s of limitSettings)
    if (!challenger && sourceOf(cmd, s) === 'cli') throw new UsageError(`${s.flags.split(' ')[0]} applies to publish --challenger only`);
  const l = comparisonLimitSettings;
  return { minCorrelation: read(cmd, l.minCorrelation), minTopDecileOverlap: read(cmd, l.minTopDecileOverlap), maxPsi: read(cmd, l.maxPsi) };
}

/** `scorejob publish <run-id> --force --reason TEXT`: a gated run, published after a person has looked at it; `--challenger`: the run's challenger. */
export function registerPublish(program: Command): void {
  const cmd = program
    .command('publish')
    .description(
      'publish a run that a publish gate (--max-reject-ratio, --max-psi) stopped, after a person has looked at it; or, with --challenger, the challenger a run scored beside it',
    )
    .argument('<run-id>', 'the run (see `scorejob runs show <run-id>`)')
    .option('--force', 'publish it although it breached a gate (needs --reason)', false)
    .option('--reason <text>', 'why, recorded on the publication (published_runs.reason); required with --force')
    .option(publishChallengerFlag.flags, publishChallengerFlag.description, false);
  for (const s of limitSettings) cmd.addOption(option(s));
  cmd
    .addOption(option(metricsFile, 'write Prometheus metrics (textfile collector) when done'))
    .addOption(option(metricsPush, 'push the same metrics to this Prometheus Pushgateway when done (replacing the group job="scorejob", model=NAME)'))
    .addOption(option(onPublishCommand))
    .action(
      action(async (ctx, runId: string, cmd: Command) => {
        const { metricsFile, metricsPush } = readObserveOptions(cmd);
        const flags = cmd.opts<{ force: boolean; challenger: boolean; reason?: string }>();
        const limits = readLimits(cmd, flags.challenger);
        if (flags.challenger) {
          const { publishChallengerCommand } = await import('../features/challenger/publishCommand.js');
          await publishChallengerCommand(ctx, runId, { onPublishCommand: read(cmd, onPublishCommand), force: flags.force, reason: flags.reason, limits });
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
