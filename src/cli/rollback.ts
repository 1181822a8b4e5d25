import { Option, type Command } from 'commander';
import { rollback } from '../job/rollback.js';
import type { Context } from './program.js';

/** The program's action wrapper (config once, logger, errors to exit codes), passed in to avoid an import cycle. */
export type ActionWrapper = (fn: (ctx: Context, ...args: never[]) => Promise<number | void>) => (...args: unknown[]) => Promise<void>;

/** `scorejob rollback [run-id]`: put an earlier kept run's scores back in customer_scores, without rescoring. */
export function registerRollbackCommand(program: Command, action: ActionWrapper): void {
  program
    .command('rollback')
    .description('point customer_scores at an earlier kept, succeeded run again (default: the one published before the current), instantly, without rescoring')
    .argument('[run-id]', 'the run to put back (see `scorejob runs`); default: the newest kept run published before the current one')
    .option('--model-name <name>', "which model, when the schema publishes several and no run is named")
    .option('--reason <text>', 'why, recorded with the rollback (published_runs.reason)')
    .addOption(new Option('--on-publish-command <cmd>', 'shell command run after the rollback committed, with SCOREJOB_RUN_ID etc. in its environment; its failure is logged only').env('SCOREJOB_ON_PUBLISH_COMMAND'))
    .action(
      action(async (ctx, runId: string | undefined, flags: { modelName?: string; reason?: string; onPublishCommand?: string }) => {
        await rollback(ctx, { runId, modelName: flags.modelName, reason: flags.reason, onPublishCommand: flags.onPublishCommand });
      }),
    );
}
