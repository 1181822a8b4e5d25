import { Command, CommanderError, Option } from 'commander';
import { createRequire } from 'node:module';
import type pg from 'pg';
import { backendChoices, defaultModelDir, parseChoice, parseIntFlag, parseNumberFlag, resolveConfig, resolveObserveOptions, type Config, type GlobalFlags } from '../config.js';
import { assertMigrated, migrate } from '../db/migrate.js';
import { checkConnection, createPool, type Pool } from '../db/pool.js';
import { checkSourceColumns } from '../db/sourceColumns.js';
import { ExitCode, ScorejobError, toExitCode } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { formatModelReport, inspectModel } from '../model/inspect.js';
import type { StopSignal } from '../job/chunkLoop.js';
import { forcePublish } from '../job/forcePublish.js';
import { formatRunDetail, formatRunList } from '../report/formatRuns.js';
import { writeHtmlReport } from '../report/htmlReport.js';
import { applyTickFlags } from '../schedule/tickFlags.js';
import type { ObserveDeps } from '../observe/observer.js';
import { resumeRun, startRun, type RunResult } from '../job/runJob.js';
import { listRuns, showRun } from '../report/runsReport.js';
import { logRunSummary } from '../job/summary.js';
import { modelDir, runOptions, type RunFlags } from './runOptions.js';
import { checkModelDirectory, defaultCron, forwardedRunArgs, runScheduler, type ForwardedRunFlags } from '../schedule/scheduler.js';
import { seedCustomers } from '../dev/seed.js';
import { addModelInitCommand } from './modelInit.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** What every command gets: the frozen config and the root logger. */
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
    // `--json`: stdout holds the JSON document or nothing; the logs go to stderr, and an error is its one line there.
    const json = (flags as { json?: unknown }).json === true;
    let log: Logger | undefined;
    let onTerminal = false;
    try {
      if (defaults.quiet && flags.logLevel === undefined && process.env.SCOREJOB_LOG_LEVEL === undefined) flags.logLevel = 'warn';
      const config = resolveConfig(flags);
      log = createLogger({ level: config.logLevel, pretty: config.pretty, destination: json ? 2 : 1 });
      onTerminal = !json && config.pretty && Boolean(process.stdout.isTTY) && Boolean(process.stderr.isTTY);
      const code = await (fn as (ctx: Context, ...rest: unknown[]) => Promise<number | void>)({ config, log }, ...args.slice(0, -1));
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
function reportError(err: unknown, log: Logger | undefined, onTerminal = false): number {
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

  const runCommand = program
    .command('run')
    .description('start a new run: plan chunks, score every customer, publish')
    .option('--model <dir>', `model directory (env SCOREJOB_MODEL_DIR; default ${defaultModelDir})`)
    .option('--chunk-size <n>', 'rows per key-range chunk (env SCOREJOB_CHUNK_SIZE; default 50000)')
    .option('--trigger <trigger>', 'what started the run: manual, cron or schedule', 'manual')
    .option('--dry-run', 'score and validate, publish nothing', false)
    .option('--backend <backend>', 'TensorFlow.js backend: auto, tensorflow, wasm or cpu (env SCOREJOB_BACKEND)')
    .option('--keep-runs <n>', 'succeeded runs kept in history (env SCOREJOB_KEEP_RUNS; default 12)')
    .option('--max-reject-ratio <ratio>', 'fail without publishing when more than this fraction of rows is rejected (env SCOREJOB_MAX_REJECT_RATIO; default 0.01)')
    .option('--chunk-attempts <n>', 'attempts per chunk on transient database errors', '4')
    .option('--max-psi <x>', "fail without publishing when the scores' PSI against the previous published run exceeds this (env SCOREJOB_MAX_PSI; default: no PSI gate)")
    .option('--metrics-file <path>', 'write Prometheus metrics (textfile collector) at the end of the run, success or failure (env SCOREJOB_METRICS_FILE)')
    .option('--progress-interval <seconds>', 'seconds between progress log lines when stderr is not a terminal; 0 for none (env SCOREJOB_PROGRESS_INTERVAL; default 30)')
    .option('--if-due <expr>', 'run only if the latest tick of this cron expression has no succeeded run yet; else exit 0 (for cron lines that fire more often than the schedule)')
    .option('--timezone <tz>', 'time zone of --if-due (default: the system time zone)')
    .addOption(new Option('--tick-at <iso>', 'the tick this run is for (set by `scorejob schedule`)').hideHelp());
  runCommand.action(
    action(async (ctx, flags: RunFlags) => {
      const opts = await applyTickFlags(ctx, flags, runOptions(flags));
      if (opts === undefined) return ExitCode.ok;
      const observe = observeOptions(flags);
      return await withStopSignal(ctx.log, async (stop) => runSummary(ctx, await startRun({ ...ctx, stop, observe }, opts)));
    }),
  );

  program
    .command('schedule')
    .description('long-running scheduler: a run (in a child process) at each cron tick, never two at once; SIGTERM stops it cleanly')
    .option('--cron <expr>', 'cron expression, 5 fields or 6 with seconds first', defaultCron)
    .option('--timezone <tz>', 'IANA time zone of --cron (default: the system time zone)')
    .option('--catch-up', 'at start-up, run at once for the latest tick if it has no succeeded run', false)
    .option('--model <dir>', 'forwarded to each run (env SCOREJOB_MODEL_DIR)')
    .option('--chunk-size <n>', 'forwarded to each run (env SCOREJOB_CHUNK_SIZE)')
    .option('--backend <backend>', 'forwarded to each run (env SCOREJOB_BACKEND)')
    .option('--keep-runs <n>', 'forwarded to each run (env SCOREJOB_KEEP_RUNS)')
    .option('--max-reject-ratio <ratio>', 'forwarded to each run (env SCOREJOB_MAX_REJECT_RATIO)')
    .option('--chunk-attempts <n>', 'forwarded to each run')
    .action(
      action(async (ctx, flags: ForwardedRunFlags & { cron: string; timezone?: string; catchUp: boolean }) => {
        // The forwarded flags are checked now (exit 2), not at every tick.
        const checked = runOptions({ ...flags, trigger: 'schedule', dryRun: false, chunkAttempts: flags.chunkAttempts ?? '4' });
        const modelName = await checkModelDirectory(checked.modelDir, flags.model !== undefined ? '--model' : process.env.SCOREJOB_MODEL_DIR ? 'SCOREJOB_MODEL_DIR' : 'model directory');
        return runScheduler(ctx, { cron: flags.cron, timezone: flags.timezone, catchUp: flags.catchUp, runArgs: forwardedRunArgs(flags), modelName });
      }),
    );

  program
    .command('resume')
    .description('continue a failed or interrupted run from its first unfinished chunk, with the same model')
    .argument('<run-id>', 'the run to continue (see `scorejob runs`)')
    .option('--metrics-file <path>', 'write Prometheus metrics (textfile collector) at the end of the run, success or failure (env SCOREJOB_METRICS_FILE)')
    .option('--progress-interval <seconds>', 'seconds between progress log lines when stderr is not a terminal; 0 for none (env SCOREJOB_PROGRESS_INTERVAL; default 30)')
    .action(
      action(async (ctx, runId: string, flags: ObserveFlags) => {
        const observe = observeOptions(flags);
        return withStopSignal(ctx.log, async (stop) => runSummary(ctx, await resumeRun({ ...ctx, stop, observe }, runId)));
      }),
    );

  program
    .command('publish')
    .description('publish a run that a publish gate (--max-reject-ratio, --max-psi) stopped, after a person has looked at it')
    .argument('<run-id>', 'the run (see `scorejob runs show <run-id>`)')
    .option('--force', 'publish it although it breached a gate', false)
    .option('--metrics-file <path>', 'write Prometheus metrics (textfile collector) when done (env SCOREJOB_METRICS_FILE)')
    .action(
      action(async (ctx, runId: string, flags: ObserveFlags & { force: boolean }) => {
        const { metricsFile } = resolveObserveOptions(flags);
        const r = await forcePublish({ ...ctx, metricsFile }, runId, { force: flags.force });
        ctx.log.info(
          { run_id: r.runId, model: r.modelName, status: 'succeeded', forced_publish: true, rows_scored: r.rowsScored, rows_rejected: r.rowsRejected, psi: r.psi, model_version: r.modelVersion, dropped_runs: r.droppedRuns },
          `run ${r.runId} published to ${ctx.config.schema}.customer_scores (model_name = '${r.modelName}') by force: ${r.rowsScored} customers, model ${r.modelName} ${r.modelVersion}`,
        );
      }),
    );

  const runs = program
    .command('runs')
    .description('list recent runs; `runs show <run-id>` for one run in detail')
    .option('--limit <n>', 'how many runs', '20')
    .option('--status <status>', 'only runs with this status: running, succeeded, failed, interrupted')
    .option('--model-name <name>', "only runs of this model (the manifest's name)")
    .option('--json', 'machine-readable output', false)
    .action(
      action(
        async (ctx, flags: { limit: string; status?: string; modelName?: string; json: boolean }) => {
          const limit = parseIntFlag(flags.limit, '--limit', 1, 10_000);
          const status = flags.status === undefined ? undefined : parseChoice(flags.status, '--status', ['running', 'succeeded', 'failed', 'interrupted']);
          await withMigratedClient(ctx, async (client) => {
            const items = await listRuns(client, ctx.config.schema, { limit, status, modelName: flags.modelName });
            process.stdout.write(flags.json ? JSON.stringify(items, null, 2) + '\n' : formatRunList(items));
          });
        },
        { quiet: true },
      ),
    );
  runs
    .command('show')
    .description('one run in detail: chunks, rejects by reason, score statistics, the previous published run')
    .argument('<run-id>', 'the run')
    .option('--json', 'machine-readable output', false)
    .option('--html <file>', 'also write a self-contained HTML report (histogram against the previous run, feature table) to this file')
    .action(
      action(
        async (ctx, runId: string, flags: { json: boolean; html?: string }) => {
          await withMigratedClient(ctx, async (client) => {
            const detail = await showRun(client, ctx.config.schema, runId);
            if (flags.html !== undefined) await writeHtmlReport(flags.html, detail);
            // `runs show <id> --json`: commander hands --json to `runs`, which declares it too.
            const json = flags.json || runs.opts<{ json: boolean }>().json;
            process.stdout.write(json ? JSON.stringify(detail, null, 2) + '\n' : formatRunDetail(detail));
          });
        },
        { quiet: true },
      ),
    );

  program
    .command('seed')
    .description('fill the source table with deterministic synthetic customers (for trying the tool and for benchmarks)')
    .requiredOption('--customers <n>', 'how many customers')
    .option('--seed <s>', 'random seed: the same seed gives the same table (default 1)')
    .option('--null-fraction <f>', 'fraction of NULLs in the nullable columns', '0.02')
    .option('--table <name>', 'table to (re)create', 'customers')
    .action(
      action(async (ctx, flags: { customers: string; seed?: string; nullFraction: string; table: string }) => {
        const customers = parseIntFlag(flags.customers, '--customers', 0, 1_000_000_000);
        const seed = flags.seed === undefined ? undefined : parseIntFlag(flags.seed, '--seed', 0, 2 ** 32 - 1);
        const nullFraction = parseNumberFlag(flags.nullFraction, '--null-fraction', 0, 1);
        await withPool(ctx, async (pool) => {
          const r = await seedCustomers(pool, { customers, seed, nullFraction, table: flags.table, log: ctx.log });
          ctx.log.info({ table: r.table, rows: r.rows, ms: Math.round(r.ms) }, `seeded ${r.rows} customers into ${r.table} in ${(r.ms / 1000).toFixed(1)} s`);
        });
      }),
    );

  const model = program.command('model').description('model tools');
  model
    .command('inspect')
    .description('print the manifest, input width, files and sha256, and check the source has every column the model needs')
    .argument('[dir]', 'model directory', undefined)
    .option('--backend <backend>', 'backend to try: auto, tensorflow, wasm or cpu', 'auto')
    .option('--no-db', 'do not connect to check the source columns')
    .action(
      action(
        async (ctx, dir: string | undefined, flags: { backend: string; db: boolean }) => {
          const backend = parseChoice(flags.backend, '--backend', backendChoices);
          const report = await inspectModel(modelDir(dir), { backend });
          if (!flags.db) {
            process.stdout.write(formatModelReport(report));
            return;
          }
          const problems = await withPool(ctx, async (pool) => {
            const client = await pool.connect();
            try {
              const check = await checkSourceColumns(client, report.manifest.source, [...report.plan.columns]);
              process.stdout.write(formatModelReport(report, check));
              return check.problems.length;
            } finally {
              client.release();
            }
          });
          return problems > 0 ? ExitCode.usage : ExitCode.ok;
        },
        { quiet: true },
      ),
    );

  addModelInitCommand(model, { action: (fn) => action(fn as Action, { quiet: true }), withPool });

  for (const cmd of program.commands) cmd.exitOverride().configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'scorejob: ').split('\n')[0] + '\n') });
  return program;
}

interface ObserveFlags {
  metricsFile?: string;
  progressInterval?: string;
}

/** The live progress line on stderr when it is a terminal, else progress log lines; the metrics file. Checked before anything is written. */
function observeOptions(flags: ObserveFlags): ObserveDeps {
  const o = resolveObserveOptions(flags);
  return { metricsFile: o.metricsFile, progress: { tty: process.stderr.isTTY ? process.stderr : undefined, intervalMs: o.progressIntervalS * 1000 } };
}

/** A migrated database's client for read-only commands. */
async function withMigratedClient<T>(ctx: Context, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withPool(ctx, async (pool) => {
    const client = await pool.connect();
    try {
      await assertMigrated(client, ctx.config.schema);
      return await fn(client);
    } finally {
      client.release();
    }
  });
}

/**
 * SIGINT/SIGTERM: the first asks the run to stop after the chunk in flight (it is marked interrupted
 * and exits 130/143); a second exits at once (the open chunk transaction dies with the connection).
 */
async function withStopSignal<T>(log: Logger, fn: (stop: StopSignal) => Promise<T>): Promise<T> {
  const stop: StopSignal = { requested: undefined };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.requested) {
      log.fatal({ signal }, `${signal} again: stopping at once; the chunk in flight is rolled back`);
      process.exit(signal === 'SIGINT' ? ExitCode.sigint : ExitCode.sigterm);
    }
    stop.requested = signal;
    log.warn({ signal }, `${signal}: finishing the chunk in flight, then stopping (send it again to stop at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn(stop);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The run's closing summary line; the run succeeded, so exit 0. */
function runSummary(ctx: Context, r: RunResult): number {
  logRunSummary(ctx.log, ctx.config.schema, r);
  return ExitCode.ok;
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

const code = await main(process.argv);
process.exit(code);
