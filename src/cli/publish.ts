import type { Command } from 'commander';
import { forcePublish } from '../job/forcePublish.js';
import { action } from './action.js';
import { metricsFile, option } from './options.js';
import { readObserveOptions } from './runOptions.js';

/** `scorejob publish <run-id> --force`: a gated run, published after a person has looked at it. */
export function registerPublish(program: Command): void {
  program
    .command('publish')
    .description('publish a run that a publish gate (--max-reject-ratio, --max-psi) stopped, after a person has looked at it')
    .argument('<run-id>', 'the run (see `scorejob runs show <run-id>`)')
    .option('--force', 'publish it although it breached a gate', false)
    .addOption(option(metricsFile, 'write Prometheus metrics (textfile collector) when done'))
    .action(
      action(async (ctx, runId: string, cmd: Command) => {
        const { metricsFile } = readObserveOptions(cmd);
        const r = await forcePublish({ ...ctx, metricsFile }, runId, { force: cmd.opts<{ force: boolean }>().force });
        ctx.log.info(
          { run_id: r.runId, model: r.modelName, status: 'succeeded', forced_publish: true, rows_scored: r.rowsScored, rows_rejected: r.rowsRejected, psi: r.psi, model_version: r.modelVersion, dropped_runs: r.droppedRuns },
          `run ${r.runId} published to ${ctx.config.schema}.customer_scores (model_name = '${r.modelName}') by force: ${r.rowsScored} customers, model ${r.modelName} ${r.modelVersion}`,
        );
      }),
    );
}
