import type { Command } from 'commander';
import { action } from './action.js';
import { onPublishCommand, option, read } from './options.js';

/** `scorejob rollback [run-id]`: put an earlier kept run's scores back in customer_scores, without rescoring. */
export function registerRollback(program: Command): void {
  program
    .command('rollback')
    .description('point customer_scores at an earlier kept, succeeded run again (default: the one published before the current), instantly, without rescoring')
    .argument('[run-id]', 'the run to put back (see `scorejob runs`); default: the newest kept run published before the current one')
    .option('--model-name <name>', 'which model, when the schema publishes several and no run is named')
    .option('--reason <text>', 'why, recorded with the rollback (published_runs.reason)')
    .addOption(
      option(
        onPublishCommand,
        'shell command run after the rollback committed, with SCOREJOB_RUN_ID etc. in its environment; its failure is logged, not fatal',
      ),
    )
    .action(
      action(async (ctx, runId: string | undefined, cmd: Command) => {
        const flags = cmd.opts<{ modelName?: string; reason?: string }>();
        await (
          await import('../publish/rollback.js')
        ).rollback(ctx, { runId, modelName: flags.modelName, reason: flags.reason, onPublishCommand: read(cmd, onPublishCommand) });
      }),
    );
}
