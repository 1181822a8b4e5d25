import type { Command } from 'commander';
import { defaults, resolveConfig, type Config } from '../config.js';
import { ExitCode, ScorejobError, toExitCode } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { logLevel, read, schema } from './options.js';

/** What every command gets: the frozen config and the root logger. */
export interface Context {
  config: Config;
  log: Logger;
}

type Action = (ctx: Context, ...args: never[]) => Promise<number | void>;

/** The program a command belongs to: where the global options live. */
function root(cmd: Command): Command {
  let c = cmd;
  while (c.parent) c = c.parent;
  return c;
}

/** The global options, checked in this order (schema, log level, then the connection), each message naming the flag or the variable. */
function globalConfig(cmd: Command, quiet: boolean): Config {
  const program = root(cmd);
  const schemaName = read(program, schema);
  const level = read(program, logLevel) ?? (quiet ? defaults.queryLogLevel : defaults.logLevel);
  return resolveConfig({
    schema: schemaName,
    logLevel: level,
    pretty: program.opts<{ pretty?: boolean }>().pretty,
    libpqDefaults: program.opts<{ libpqDefaults?: boolean }>().libpqDefaults,
  });
}

/**
 * Wraps a command's action: config once, logger, run, map errors to exit codes.
 * Query commands default to `warn` so their stdout stays clean for people and for `--json`.
 */
export function action(fn: Action, defaultsOf: { quiet?: boolean } = {}) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args.at(-1) as Command;
    // `--json`: stdout holds the JSON document or nothing; the logs go to stderr, and an error is its one line there.
    const json = cmd.optsWithGlobals<{ json?: unknown }>().json === true;
    let log: Logger | undefined;
    let onTerminal = false;
    try {
      const config = globalConfig(cmd, defaultsOf.quiet === true);
      log = createLogger({ level: config.logLevel, pretty: config.pretty, destination: json ? 2 : 1 });
      onTerminal = !json && config.pretty && Boolean(process.stdout.isTTY) && Boolean(process.stderr.isTTY);
      const code = await (fn as (ctx: Context, ...rest: unknown[]) => Promise<number | void>)({ config, log }, ...args.slice(0, -2), cmd);
      process.exitCode = code ?? ExitCode.ok;
    } catch (err) {
      process.exitCode = reportError(err, json ? undefined : log, onTerminal);
    }
  };
}

/**
 * An error said once per destination: one log line (unless the run already logged it, with its
 * run_id), and one line on stderr for people and cron mail. On a terminal, where the logs and stderr
 * are the same screen, the log line is all: the stderr line would say it a second time.
 */
export function reportError(err: unknown, log: Logger | undefined, onTerminal = false): number {
  const code = toExitCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === ExitCode.ok) {
    log?.info(message); // nothing to do is not an error
    return code;
  }
  const loggedAt = err instanceof ScorejobError ? err.loggedAt : undefined;
  if (log && loggedAt === undefined) {
    const fields: Record<string, unknown> = { exit_code: code };
    if (!(err instanceof ScorejobError)) fields.err = err;
    log.error(fields, message);
  }
  const shownInLog = log !== undefined && onTerminal && log.isLevelEnabled(loggedAt ?? 'error');
  // The one line a person reads, on stderr, whatever the log format.
  if (!shownInLog) process.stderr.write(`scorejob: ${message}\n`);
  return code;
}
