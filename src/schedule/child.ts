import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import type { Config } from '../config.js';
import type { CronSpec } from '../cronTicks.js';
import { ExitCode } from '../errors.js';
import { Ledger, type RunRow } from '../ledger/ledger.js';
import type { Logger } from '../log.js';

/** The CLI a child runs: this installation's, whatever the working directory. */
const bin = fileURLToPath(new URL('../../bin/scorejob', import.meta.url));

/** One scheduled run in its own process. */
export interface ChildRun {
  tick: Date;
  child: ChildProcess;
  pid: number | undefined;
  /** Settles when the process has ended (never rejects). */
  done: Promise<ChildOutcome>;
}

export interface ChildOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The process could not be started. */
  error?: Error;
}

/**
 * argv of the child: the scheduler's global options, then `run` for the tick. `--if-due` with
 * `--tick-at` makes the child skip a tick that another scheduler (another machine) already served.
 */
export function childArgs(config: Config, spec: CronSpec, tick: Date, runArgs: readonly string[]): string[] {
  return [
    '--schema',
    config.schema,
    '--log-level',
    config.logLevel,
    config.pretty ? '--pretty' : '--no-pretty',
    ...(config.db.origin === 'libpq defaults' ? ['--libpq-defaults'] : []),
    'run',
    '--trigger',
    'schedule',
    '--tick-at',
    tick.toISOString(),
    '--if-due',
    spec.expression,
    ...(spec.timezone === undefined ? [] : ['--timezone', spec.timezone]),
    ...runArgs,
  ];
}

/**
 * Starts `scorejob run` for a tick. Scoring runs in that process so it never blocks the scheduler's
 * event loop. Its output goes straight to the scheduler's stdout/stderr (JSON lines carry their pid).
 * It gets a process group of its own: a terminal's Ctrl-C reaches the scheduler only, which forwards
 * exactly one SIGTERM (a second signal would make the run stop at once, without its clean stop).
 */
export function startChildRun(config: Config, spec: CronSpec, tick: Date, runArgs: readonly string[]): ChildRun {
  const child = spawn(process.execPath, [bin, ...childArgs(config, spec, tick, runArgs)], {
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
    env: process.env,
  });
  const done = new Promise<ChildOutcome>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { tick, child, pid: child.pid, done };
}

type ChildLedgerRow = Pick<RunRow, 'run_id' | 'status' | 'error'>;

/** The ledger row the child wrote for its tick (undefined when it wrote none, or the database is away). */
async function findChildRun(pool: pg.Pool, schema: string, run: ChildRun): Promise<ChildLedgerRow | undefined> {
  if (run.pid === undefined) return undefined;
  return new Ledger(schema).runOfProcess(pool, run.tick, run.pid, hostname());
}

/** One log line per finished child, at the level its exit code deserves, naming the run from the ledger. */
export async function reportChildOutcome(log: Logger, pool: pg.Pool, schema: string, run: ChildRun, outcome: ChildOutcome, tickText: string): Promise<void> {
  let ledgerAway = false;
  const row = await findChildRun(pool, schema, run).catch(() => void (ledgerAway = true));
  const id = row?.run_id;
  const fields = {
    tick_at: run.tick.toISOString(),
    child_pid: run.pid,
    exit_code: outcome.code,
    signal: outcome.signal ?? undefined,
    run_id: id,
    status: row?.status,
  };
  const the = id === undefined ? 'the run' : `run ${id}`;
  switch (outcome.code) {
    case ExitCode.ok:
      if (row) log.info(fields, `run ${id} for tick ${tickText} ${row.status === 'succeeded' ? 'succeeded' : `ended (${row.status})`}`);
      else
        log.info(
          fields,
          `tick ${tickText}: nothing to do: it already has a succeeded run, or its run waits for a person after a gate (the child's log line above says which)`,
        );
      return;
    case ExitCode.locked:
      log.warn(
        fields,
        `tick ${tickText} skipped: another run holds the lock, or the source is not ready (exit 75; the child's line above says which); waiting for the next tick`,
      );
      return;
    case ExitCode.lockStuck:
      log.error(
        fields,
        `tick ${tickText} skipped: the run lock has been held far longer than a normal run (exit 69; the child's line above names the holder); look at that process, the next tick tries again`,
      );
      return;
    case ExitCode.runFailed:
      if (row)
        log.error(
          { ...fields, error: row.error },
          `run ${id} for tick ${tickText} failed (exit 1): ${row.error ?? 'see the lines above'}; resume it with \`scorejob resume ${id}\`, or the next tick starts a new run`,
        );
      else if (ledgerAway)
        log.error(
          fields,
          `the run for tick ${tickText} failed (exit 1) and the ledger cannot be read to say which (is the database away?); see the lines above; the next tick tries again`,
        );
      else
        log.error(
          fields,
          `the run for tick ${tickText} failed before it was recorded (exit 1), e.g. the database was unreachable or the source still not ready past --ready-deadline; see the lines above; the next tick tries again`,
        );
      return;
    case ExitCode.usage:
      log.error(fields, `the run for tick ${tickText} refused its configuration (exit 2; see the lines above); fix it, the next tick tries again`);
      return;
    case ExitCode.sigint:
    case ExitCode.sigterm:
      log.warn(
        fields,
        `${the} for tick ${tickText} was interrupted (exit ${outcome.code})${id === undefined ? '' : `; resume it with \`scorejob resume ${id}\``}`,
      );
      return;
    default:
      if (outcome.error) log.error({ ...fields, err: outcome.error }, `could not start the run for tick ${tickText}: ${outcome.error.message}`);
      else
        log.error(
          fields,
          `${the} for tick ${tickText} ended with ${outcome.signal ? `signal ${outcome.signal}` : `exit ${outcome.code}`}; see the lines above`,
        );
  }
}
