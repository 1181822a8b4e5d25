import type { Command } from 'commander';
import { defaults } from '../config.js';
import { checkModelDirectory, runScheduler } from '../schedule/scheduler.js';
import { action } from './action.js';
import { addSettings, forwardedArgs, forwardedRunSettings, model, nameOf, sourceOf } from './options.js';
import { readObserveOptions, readRunOptions } from './runOptions.js';

/** `scorejob schedule`: the in-process scheduler; the options of `run` it takes are passed on to each run. */
export function registerSchedule(program: Command): void {
  const cmd = program
    .command('schedule')
    .description('long-running scheduler: a run (in a child process) at each cron tick, never two at once; SIGTERM stops it cleanly')
    .option('--cron <expr>', 'cron expression, 5 fields or 6 with seconds first', defaults.cron)
    .option('--timezone <tz>', 'IANA time zone of --cron (default: the system time zone)')
    .option('--catch-up', 'at start-up, run at once for the latest tick if it has no succeeded run', false);
  addSettings(cmd, forwardedRunSettings)
    .addHelpText('after', '\nThe options from --model on are those of `scorejob run`: checked at start-up, passed on to each run.')
    .action(
      action(async (ctx, cmd: Command) => {
        const flags = cmd.opts<{ cron: string; timezone?: string; catchUp: boolean }>();
        // The forwarded options are checked now (exit 2), not at every tick.
        const checked = readRunOptions(cmd, { trigger: 'schedule', dryRun: false });
        readObserveOptions(cmd);
        const modelName = await checkModelDirectory(checked.modelDir, sourceOf(cmd, model) === undefined ? 'model directory' : nameOf(cmd, model));
        return runScheduler(ctx, { cron: flags.cron, timezone: flags.timezone, catchUp: flags.catchUp, runArgs: forwardedArgs(cmd), modelName });
      }),
    );
}
