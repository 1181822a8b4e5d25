import { Option, type Command } from 'commander';
import { ExitCode, toExitCode } from '../errors.js';
import { exportRefusal } from '../observe/metrics.js';
import { runForTick } from '../schedule/tickRun.js';
import type { TickFlags } from '../schedule/tickFlags.js';
import { action } from './action.js';
import { addSettings, forwardedRunSettings, chunkSize, model, option, outageBudget, read, trigger, workWait } from './options.js';
import { metricsFileOf, metricsPushOf, modelNameOf, observeDeps, readObserveOptions, readRunOptions } from './runOptions.js';
import { runSummary } from './runSummary.js';
import { withStopSignal } from './stopSignal.js';

/** `scorejob run`: a new run; with --if-due, what the tick needs (a new run, a resume, or nothing); with --join, one command for every pod of a Job. */
export function registerRun(program: Command): void {
  const cmd = program.command('run').description('start a new run: plan chunks, score every customer, publish');
  cmd.addOption(option(model)).addOption(option(chunkSize)).addOption(option(trigger)).option('--dry-run', 'score and validate, publish nothing', false);
  cmd.option(
    '--replace-promoted',
    "publish although customer_scores shows another model's scores that a person published by hand: go back to this model",
    false,
  );
  cmd.option(
    '--skip-check <name>',
    "skip this input check of the manifest (row_count, null_rate or an assertion's name) for this run; repeatable; needs --reason",
    (v: string, all: string[]) => [...all, v],
    [],
  );
  cmd.option('--reason <text>', 'with --skip-check: why the input is accepted as it is (recorded on the run)');
  cmd.option(
    '--only-new',
    'score only customers absent from the published run (and rows changed since, with source.updated_column); carry the other scores forward',
    false,
  );
  // The settings `schedule` forwards to each run, but model and chunk size, which `run` takes above.
  addSettings(
    cmd,
    forwardedRunSettings.filter((s) => s !== model && s !== chunkSize),
  );
  cmd
    .option(
      '--if-due <expr>',
      "run only if the latest tick of this cron expression has no succeeded run yet; resume the tick's failed or interrupted run rather than start anew; exit 0 when it succeeded or a gate stopped it (it waits for a person); for cron lines that fire more often than the schedule",
    )
    .option('--timezone <tz>', 'time zone of --if-due (default: the system time zone)')
    .option(
      '--join',
      "with --if-due: every process runs this same command (a Kubernetes Job's pods); one runs the tick's run (shared, as with --workers 1), the others join it as workers instead of exiting 75; all exit 0 once it is published",
      false,
    )
    .addOption(option(workWait, 'with --join: how long a process that finds the lock taken waits for the run to join, seconds'))
    .addOption(new Option('--tick-at <iso>', 'the tick this run is for (set by `scorejob schedule`)').hideHelp())
    .action(
      action(async (ctx, cmd: Command) => {
        try {
          const flags = cmd.opts<TickFlags & { onlyNew: boolean; replacePromoted: boolean; skipCheck: string[]; reason?: string }>();
          const skipChecks = flags.skipCheck.length > 0 || flags.reason !== undefined ? { names: flags.skipCheck, reason: flags.reason } : undefined;
          const opts = { ...readRunOptions(cmd), onlyNew: flags.onlyNew, replacePromoted: flags.replacePromoted, skipChecks };
          // --join: the run is shared (its chunks claimed), so the other processes can join it.
          const runOpts = flags.join && opts.workers === undefined ? Object.freeze({ ...opts, workers: 1 }) : Object.freeze(opts);
          const observe = observeDeps(readObserveOptions(cmd));
          const join = flags.join ? { waitS: read(cmd, workWait) } : undefined;
          const notice = (line: string) => void process.stderr.write(`scorejob: ${line}\n`);
          return await withStopSignal(ctx.log, (stop) =>
            runForTick({ ...ctx, stop, observe, outageBudgetMs: read(cmd, outageBudget) * 1000 }, flags, runOpts, join, { notice }, (r) => runSummary(ctx, r)),
          );
        } catch (err) {
          if (toExitCode(err) === ExitCode.usage) await exportRefusal({ file: metricsFileOf(cmd), push: metricsPushOf(cmd) }, await modelNameOf(cmd), ctx.log);
          throw err;
        }
      }),
    );
}
