import { Option, type Command } from 'commander';
import { ExitCode, toExitCode } from '../errors.js';
import { exportRefusal } from '../observe/metrics.js';
import { applyTickFlags, type TickFlags } from '../schedule/tickFlags.js';
import { action } from './action.js';
import { addSettings, backend, challenger, chunkAttempts, chunkLease, chunkSize, keepRuns, maxPsi, maxRejectRatio, metricsFile, model, onPublishCommand, option, outageBudget, progressInterval, read, reasons, trigger, workers } from './options.js';
import { metricsFileOf, modelNameOf, observeDeps, readObserveOptions, readRunOptions } from './runOptions.js';
import { runSummary } from './runSummary.js';
import { withStopSignal } from './stopSignal.js';

/** `scorejob run`: a new run. */
export function registerRun(program: Command): void {
  const cmd = program.command('run').description('start a new run: plan chunks, score every customer, publish');
  cmd.addOption(option(model)).addOption(option(chunkSize)).addOption(option(trigger)).option('--dry-run', 'score and validate, publish nothing', false);
  cmd.option('--replace-promoted', 'publish although customer_scores shows a challenger a person published by hand (publish --challenger): go back to this model', false);
  cmd.option('--only-new', 'score only customers absent from the published run (and rows changed since, with source.updated_column); carry the other scores forward', false);
  addSettings(cmd, [backend, keepRuns, maxRejectRatio, chunkAttempts, outageBudget, maxPsi, metricsFile, progressInterval, onPublishCommand, reasons, challenger, workers, chunkLease]);
  cmd
    .option('--if-due <expr>', 'run only if the latest tick of this cron expression has no succeeded run yet; else exit 0 (for cron lines that fire more often than the schedule)')
    .option('--timezone <tz>', 'time zone of --if-due (default: the system time zone)')
    .addOption(new Option('--tick-at <iso>', 'the tick this run is for (set by `scorejob schedule`)').hideHelp())
    .action(
      action(async (ctx, cmd: Command) => {
        try {
          const opts = await applyTickFlags(ctx, cmd.opts<TickFlags>(), { ...readRunOptions(cmd), onlyNew: cmd.opts<{ onlyNew: boolean }>().onlyNew, replacePromoted: cmd.opts<{ replacePromoted: boolean }>().replacePromoted });
          if (opts === undefined) return ExitCode.ok;
          const observe = observeDeps(readObserveOptions(cmd));
          return await withStopSignal(ctx.log, async (stop) => runSummary(ctx, await (await import('../job/runJob.js')).startRun({ ...ctx, stop, observe, outageBudgetMs: read(cmd, outageBudget) * 1000 }, opts)));
        } catch (err) {
          if (toExitCode(err) === ExitCode.usage) await exportRefusal(metricsFileOf(cmd), await modelNameOf(cmd), ctx.log);
          throw err;
        }
      }),
    );
}
