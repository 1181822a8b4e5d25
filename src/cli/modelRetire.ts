import type { Command } from 'commander';
import { action } from './action.js';
import { onPublishCommand, option, read } from './options.js';

/** Adds `scorejob model retire NAME --confirm NAME [--reason TEXT]` to the `model` command. */
export function addModelRetireCommand(model: Command): void {
  model
    .command('retire')
    .description(
      "take a model's rows out of customer_scores and the reader views (history kept as --keep-runs allows), recorded and notified; its next run publishes it again",
    )
    .argument('<name>', "the model's name (the manifest's `name`, customer_scores.model_name)")
    .option('--confirm <name>', 'the model name again: without it, retire only says what it would do (exit 2)')
    .option('--reason <text>', 'why, recorded with the retire (published_runs.reason)')
    .addOption(
      option(
        onPublishCommand,
        'shell command run after the retire committed, with SCOREJOB_PUBLISH_KIND=retire and SCOREJOB_RUN_ID empty; its failure is logged, not fatal',
      ),
    )
    .action(
      action(async (ctx, name: string, cmd: Command) => {
        const flags = cmd.opts<{ confirm?: string; reason?: string }>();
        await (
          await import('../publish/retire.js')
        ).retireModel(ctx, { modelName: name, confirm: flags.confirm, reason: flags.reason, onPublishCommand: read(cmd, onPublishCommand) });
      }),
    );
}
