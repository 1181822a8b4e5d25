import type { Command } from 'commander';
import { action } from './action.js';
import { addSettings, metricsFile, metricsPush, outageBudget, progressInterval, read } from './options.js';
import { observeDeps, readObserveOptions } from './runOptions.js';
import { runSummary } from './runSummary.js';
import { withStopSignal } from './stopSignal.js';

/** `scorejob resume <run-id>`: the run's own options are in the ledger; only how it reports itself (and how long it waits out an outage) is chosen anew. */
export function registerResume(program: Command): void {
  const cmd = program
    .command('resume')
    .description('continue a failed or interrupted run from its first unfinished chunk, with the same model')
    .argument('<run-id>', 'the run to continue (see `scorejob runs`)');
  addSettings(cmd, [metricsFile, metricsPush, progressInterval, outageBudget]).action(
    action(async (ctx, runId: string, cmd: Command) => {
      const observe = observeDeps(readObserveOptions(cmd));
      return withStopSignal(ctx.log, async (stop) =>
        runSummary(ctx, await (await import('../run/runJob.js')).resumeRun({ ...ctx, stop, observe, outageBudgetMs: read(cmd, outageBudget) * 1000 }, runId)),
      );
    }),
  );
}
