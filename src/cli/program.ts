import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { ExitCode } from '../errors.js';
import { reportError } from './action.js';
import { registerMigrate } from './migrate.js';
import { registerModel } from './model.js';
import { logLevel, option, schema } from './options.js';
import { registerOutcomes } from './outcomes.js';
import { registerPublish } from './publish.js';
import { registerResume } from './resume.js';
import { registerRollback } from './rollback.js';
import { registerRun } from './run.js';
import { registerRuns } from './runs.js';
import { registerSchedule } from './schedule.js';
import { registerSeed } from './seed.js';
import { registerWork } from './work.js';

export type { Context } from './action.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** commander's own messages as one line, `scorejob: …` like ours. */
const outputError = (str: string, write: (s: string) => void) => write(str.replace(/^error: /, 'scorejob: ').split('\n')[0] + '\n');

/**
 * The program: global options, then one file per command. Building it runs nothing, and loads nothing
 * heavy: each command file imports what its action runs inside the action (`await import(…)`), so
 * `--help`, `runs`, `migrate`, `publish` and `rollback` never load TF.js (~0.4 s of CPU at every start;
 * tests/unit/cli/startup.test.ts).
 */
export function buildProgram(): Command {
  const program = new Command('scorejob')
    .description('Rescore every customer in PostgreSQL with a TensorFlow.js model and publish the scores atomically.')
    .version(version, '-V, --version')
    .addOption(option(schema))
    .addOption(option(logLevel))
    .option('--pretty', 'human-readable logs (default when stdout is a terminal)')
    .option('--no-pretty', 'JSON log lines even on a terminal')
    .option(
      '--libpq-defaults',
      "with none of DATABASE_URL, PGHOST, PGDATABASE set, connect where libpq's defaults lead (localhost, the OS user's database) instead of refusing; env SCOREJOB_LIBPQ_DEFAULTS=1",
    )
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError });

  registerMigrate(program);
  registerRun(program);
  registerSchedule(program);
  registerResume(program);
  registerPublish(program);
  registerRollback(program);
  registerRuns(program);
  registerWork(program);
  registerSeed(program);
  registerModel(program);
  registerOutcomes(program);

  for (const cmd of program.commands) cmd.exitOverride().configureOutput({ outputError });
  return program;
}

/** argv -> exit code. Commander's own usage errors (unknown flag, missing argument) exit 2. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return ExitCode.ok;
      // Help asked for exits 0; help shown because no command was given (on stderr) is a usage error.
      if (err.code === 'commander.help') return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
      return ExitCode.usage;
    }
    return reportError(err, undefined);
  }
  return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
}
