import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { backendChoices, defaults, parseChoice, shippedModelDir } from '../config.js';
import { checkSourceColumns } from '../db/sourceColumns.js';
import { ExitCode } from '../errors.js';
import { withSession } from '../db/session.js';
import { action } from './action.js';
import { addModelBaselineCommand } from './modelBaseline.js';
import { addModelInitCommand } from './modelInit.js';
import { addModelRetireCommand } from './modelRetire.js';
import { model as modelSetting } from './options.js';

/** `scorejob model inspect [dir]`: what a model needs, and whether the source has it; `model init` (modelInit.ts), `model retire` (modelRetire.ts). */
export function registerModel(program: Command): void {
  const model = program.command('model').description('model tools');
  model
    .command('inspect')
    .description('print the manifest, input width, files and sha256, and check the source has every column the model needs')
    .argument('[dir]', 'model directory', undefined)
    .option('--backend <backend>', 'backend to try: auto, tensorflow, wasm or cpu', defaults.backend)
    .option('--no-db', 'do not connect to check the source columns')
    .action(
      action(
        async (ctx, dir: string | undefined, cmd: Command) => {
          const flags = cmd.opts<{ backend: string; db: boolean }>();
          const backend = parseChoice(flags.backend, '--backend', backendChoices);
          const { formatModelReport, inspectModel } = await import('../model/inspect.js');
          const report = await inspectModel(dir !== undefined ? resolve(dir) : modelDirFromEnv(), { backend });
          if (!flags.db) {
            process.stdout.write(formatModelReport(report));
            return;
          }
          const problems = await withSession(ctx.config, { requires: 'reachable' }, async ({ client }) => {
            const check = await checkSourceColumns(client, report.manifest.source, [...report.plan.columns], {
              manifestFile: join(report.dir, 'manifest.json'),
            });
            process.stdout.write(formatModelReport(report, check));
            return check.problems.length;
          });
          return problems > 0 ? ExitCode.usage : ExitCode.ok;
        },
        { quiet: true },
      ),
    );
  addModelInitCommand(model);
  addModelBaselineCommand(model);
  addModelRetireCommand(model);
}

/** The argument has no environment variable of its own in commander: the one of `--model` applies, then the shipped model. */
function modelDirFromEnv(): string {
  const given = process.env[modelSetting.env as string];
  return given ? resolve(given) : shippedModelDir;
}
