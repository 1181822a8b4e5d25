import type { Command } from 'commander';
import { action } from './action.js';
import { metricsFile, metricsPush, onPublishCommand, option, read } from './options.js';
import { readObserveOptions } from './runOptions.js';

/** `scorejob publish <run-id> --force`: a gated run, published after a person has looked at it; `--challenger`: the run's challenger. */
export function registerPublish(program: Command): void {
  program
    .command('publish')
    .description('publish a run that a publish gate (--max-reject-ratio, --max-psi) stopped, after a person has looked at it; or, with --challenger, the challenger a run scored beside it')
    .argument('<run-id>', 'the run (see `scorejob runs show <run-id>`)')
    .option('--force', 'publish it although it breached a gate', false)
    .option('--challenger', "publish the scores of the run's challenger (`run --challenger DIR`) instead of the run's", false)
    .addOption(option(metricsFile, 'write Prometheus metrics (textfile collector) when done'))
    .addOption(option(metricsPush, 'push the same metrics to this Prometheus Pushgateway when done (replacing the group job="scorejob", model=NAME)'))
    .addOption(option(onPublishCommand))
    .action(
      action(async (ctx, runId: string, cmd: Command) => {
        const { metricsFile, metricsPush } = readObserveOptions(cmd);
        const flags = cmd.opts<{ force: boolean; challenger: boolean }>();
        if (flags.challenger) {
          // --force: over the challenger's own gates (rejects, drift), after review; never a challenger that scored nobody.
          const r = await (await import('../job/challengerPublish.js')).publishChallenger(ctx, runId, { onPublishCommand: read(cmd, onPublishCommand), force: flags.force });
          ctx.log.info(
            { run_id: r.runId, champion_run_id: r.championRunId, model: r.modelName, status: 'succeeded', challenger: true, forced_publish: flags.force, rows_scored: r.rowsScored, model_version: r.modelVersion, dropped_runs: r.droppedRuns },
            `run ${r.championRunId}'s challenger (run ${r.runId}, model version ${r.modelVersion}) published to ${ctx.config.schema}.customer_scores (model_name = '${r.modelName}')${flags.force ? ' by force' : ''}: ${r.rowsScored} customers`,
          );
          return;
        }
        const r = await (await import('../job/forcePublish.js')).forcePublish({ ...ctx, metricsFile, metricsPush }, runId, { force: flags.force, onPublishCommand: read(cmd, onPublishCommand) });
        ctx.log.info(
          { run_id: r.runId, model: r.modelName, status: 'succeeded', forced_publish: true, rows_scored: r.rowsScored, rows_rejected: r.rowsRejected, psi: r.psi, model_version: r.modelVersion, dropped_runs: r.droppedRuns },
          `run ${r.runId} published to ${ctx.config.schema}.customer_scores (model_name = '${r.modelName}') by force: ${r.rowsScored} customers, model ${r.modelName} ${r.modelVersion}`,
        );
      }),
    );
}
