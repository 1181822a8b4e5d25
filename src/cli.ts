import { Command, CommanderError, Option } from 'commander';
import { createRequire } from 'node:module';
import { resolveConfig, type Config, type GlobalFlags } from './config.js';
import { ExitCode, ScorejobError, UsageError, toExitCode } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { checkConnection, createPool, type Pool } from './db/pool.js';
import { migrate } from './db/migrate.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/** What every command gets: the frozen config, the root logger, and (lazily) a pool. */
export interface Context {
  config: Config;
  log: Logger;
}

type Action = (ctx: Context, ...args: never[]) => Promise<number | void>;

function globalFlags(cmd: Command): GlobalFlags {
  return cmd.optsWithGlobals<GlobalFlags>();
}

/**
 * Wraps a command's action: config once, logger, run, map errors to exit codes.
 * Query commands default to `warn` so their stdout stays clean for people and for `--json`.
 */
function action(fn: Action, defaults: { quiet?: boolean } = {}) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args.at(-1) as Command;
    const flags = globalFlags(cmd);
    let log: Logger | undefined;
    try {
      if (defaults.quiet && flags.logLevel === undefined && process.env.SCOREJOB_LOG_LEVEL === undefined) flags.logLevel = 'warn';
      const config = resolveConfig(flags);
      log = createLogger({ level: config.logLevel, pretty: config.pretty });
      const code = await (fn as (ctx: Context, ...rest: unknown[]) => Promise<number | void>)({ config, log }, ...args.slice(0, -1));
      process.exitCode = code ?? ExitCode.ok;
    } catch (err) {
      process.exitCode = reportError(err, log);
    }
  };
}

function reportError(err: unknown, log: Logger | undefined): number {
  const code = toExitCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (log) {
    const fields: Record<string, unknown> = { exit_code: code };
    if (!(err instanceof ScorejobError)) fields.err = err;
    log.error(fields, message);
  }
  // The one line a person reads, on stderr, whatever the log format.
  process.stderr.write(`scorejob: ${message}\n`);
  return code;
}

/** Opens a pool, proves the connection, runs fn, always closes the pool. */
export async function withPool<T>(ctx: Context, fn: (pool: Pool) => Promise<T>): Promise<T> {
  const pool = createPool(ctx.config.db);
  try {
    await checkConnection(pool, ctx.config.db);
    return await fn(pool);
  } finally {
    await pool.end().catch(() => undefined);
  }
}

export function buildProgram(): Command {
  const program = new Command('scorejob')
    .description('Rescore every customer in PostgreSQL with a TensorFlow.js model and publish the scores atomically.')
    .version(version, '-V, --version')
    .addOption(new Option('--schema <name>', 'schema of the ledger and the scores (env SCOREJOB_SCHEMA)'))
    .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (env SCOREJOB_LOG_LEVEL)'))
    .option('--pretty', 'human-readable logs (default when stdout is a terminal)')
    .option('--no-pretty', 'JSON log lines even on a terminal')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'scorejob: ').split('\n')[0] + '\n') });

  program
    .command('migrate')
    .description('create or upgrade the scoring schema from sql/ (idempotent, ordered, recorded)')
    .action(
      action(async (ctx) => {
        await withPool(ctx, async (pool) => {
          const client = await pool.connect();
          try {
            const steps = await migrate(client, ctx.config.schema);
            for (const step of steps) ctx.log.info({ migration: step.name, outcome: step.outcome }, `migration ${step.name}: ${step.outcome}`);
            const applied = steps.filter((s) => s.outcome === 'applied').length;
            ctx.log.info({ schema: ctx.config.schema, applied }, applied === 0 ? `schema "${ctx.config.schema}" is up to date` : `applied ${applied} migration(s) to schema "${ctx.config.schema}"`);
          } finally {
            client.release();
          }
        });
      }),
    );

  for (const cmd of program.commands) cmd.exitOverride().configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'scorejob: ').split('\n')[0] + '\n') });
  return program;
}

/** argv -> exit code. Commander's own usage errors (unknown flag, missing argument) exit 2. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
      return ExitCode.usage;
    }
    return reportError(err instanceof UsageError ? err : err, undefined);
  }
  return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
}

const code = await main(process.argv);
process.exit(code);
