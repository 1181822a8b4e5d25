import { access, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTask, type Logger as CronLogger, type ScheduledTask } from 'node-cron';
import type { Config } from './config.js';
import { checkCronExpression, checkTimezone, formatTick, type CronSpec } from './cronTicks.js';
import { describeDbError } from './db/describeError.js';
import { assertMigrated } from './db/migrate.js';
import { checkConnection, createPool, type Pool } from './db/pool.js';
import { ExitCode, UsageError } from './errors.js';
import type { Logger } from './log.js';
import { parseManifest } from './model/manifest.js';
import { checkDue, describeDue, type DueDecision } from './run/due.js';
import { reportChildOutcome, startChildRun, type ChildRun } from './scheduleChild.js';

/** Monthly, 02:30 on the 1st: after the nightly loads of the month's last day. */
export const defaultCron = '30 2 1 * *';

/** Options of `scorejob schedule`. */
export interface ScheduleOptions {
  /** Cron expression (node-cron 4: 5 fields, or 6 with seconds first). */
  cron: string;
  /** IANA time zone of the expression; undefined: the system's. */
  timezone: string | undefined;
  /** Run at once for a latest tick that has no succeeded run (at start-up, and when node-cron reports a missed tick). */
  catchUp: boolean;
  /** `scorejob run` flags forwarded to every child (model, chunk size, backend, ...), already validated. */
  runArgs: readonly string[];
}

/** Flags of `scorejob run` that `schedule` forwards to its children. */
export interface ForwardedRunFlags {
  model?: string | undefined;
  chunkSize?: string | undefined;
  backend?: string | undefined;
  keepRuns?: string | undefined;
  maxRejectRatio?: string | undefined;
  chunkAttempts?: string | undefined;
}

/** argv for the children: only the flags given (a child reads the same environment for the rest). */
export function forwardedRunArgs(flags: ForwardedRunFlags): string[] {
  const args: string[] = [];
  if (flags.model !== undefined) args.push('--model', resolve(flags.model));
  if (flags.chunkSize !== undefined) args.push('--chunk-size', flags.chunkSize);
  if (flags.backend !== undefined) args.push('--backend', flags.backend);
  if (flags.keepRuns !== undefined) args.push('--keep-runs', flags.keepRuns);
  if (flags.maxRejectRatio !== undefined) args.push('--max-reject-ratio', flags.maxRejectRatio);
  if (flags.chunkAttempts !== undefined) args.push('--chunk-attempts', flags.chunkAttempts);
  return args;
}

/** A model directory that cannot work is refused at start-up (exit 2), not at every tick for a month. */
export async function checkModelDirectory(dir: string, flag: string): Promise<void> {
  const file = join(dir, 'manifest.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
    await access(join(dir, 'model.json'));
  } catch (err) {
    throw new UsageError(`${flag}: "${dir}" is not a model directory (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}: ${(err as { path?: string }).path ?? file})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${file} is not JSON: ${(err as Error).message}`);
  }
  parseManifest(json, file);
}

/**
 * `scorejob schedule`: a run in a child process at each tick, never two at once (node-cron's
 * noOverlap for ticks, one child at a time for catch-ups, the database lock across processes and
 * machines). A failed run is logged (and in the ledger) and the scheduler carries on. SIGTERM/SIGINT:
 * no more ticks, one SIGTERM forwarded to a run in flight (it stops after its chunk and is marked
 * interrupted), wait for it, exit 0; a second signal stops the run at once and exits 143/130.
 */
export async function runScheduler(ctx: { config: Config; log: Logger }, opts: ScheduleOptions, signals: NodeJS.EventEmitter = process): Promise<number> {
  const { config, log } = ctx;
  checkCronExpression(opts.cron, '--cron');
  const timezone = opts.timezone === undefined ? undefined : checkTimezone(opts.timezone, '--timezone');
  const spec: CronSpec = { expression: opts.cron, timezone };
  const zone = timezone ?? `system time zone, ${Intl.DateTimeFormat().resolvedOptions().timeZone}`;
  const at = (tick: Date) => formatTick(tick, timezone);

  let current: ChildRun | undefined;
  /** The current child's life, up to its report: what a stop waits for. */
  let active: Promise<void> | undefined;
  let stopping: NodeJS.Signals | undefined;
  let forced: NodeJS.Signals | undefined;
  let ticks = 0;
  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      if (current && !forced) {
        forced = signal;
        log.warn({ signal, child_pid: current.pid }, `${signal} again: stopping the run at once (its chunk in flight is rolled back)`);
        current.child.kill('SIGTERM');
      }
      return;
    }
    stopping = signal;
    abort.abort();
    if (current) {
      log.warn({ signal, child_pid: current.pid, tick_at: current.tick.toISOString() }, `${signal}: no more ticks; asking the run in flight (pid ${current.pid}) to stop after its chunk, then stopping (send it again to stop at once)`);
      current.child.kill('SIGTERM');
    } else {
      log.info({ signal }, `${signal}: no run in flight; scheduler stopping`);
    }
  };
  signals.on('SIGTERM', onSignal);
  signals.on('SIGINT', onSignal);

  const pool = createPool(config.db, 2);
  let task: ScheduledTask | undefined;
  try {
    await startupCheck(pool, config, log);

    /** Starts the child for a tick unless one is in flight; resolves when it has ended and been reported. */
    const runFor = (tick: Date, why: 'tick' | 'catch-up'): Promise<void> => {
      if (stopping) return Promise.resolve();
      if (current) {
        log.warn({ tick_at: tick.toISOString(), running_tick_at: current.tick.toISOString() }, `tick ${at(tick)} skipped: the run for tick ${at(current.tick)} is still in flight`);
        return Promise.resolve();
      }
      const run = startChildRun(config, spec, tick, opts.runArgs);
      current = run;
      log.info({ tick_at: tick.toISOString(), child_pid: run.pid, why }, `${why === 'tick' ? 'tick' : 'catch-up for tick'} ${at(tick)}: run started in child process ${run.pid ?? '?'}`);
      active = (async () => {
        const outcome = await run.done;
        await reportChildOutcome(log, pool, config.schema, run, outcome, at(tick));
        current = undefined;
        if (!stopping && task) logNext(task, 'next tick');
      })();
      return active;
    };

    const logNext = (t: ScheduledTask, what: string) => {
      const next = t.getNextRun();
      log.info({ cron: spec.expression, timezone, next_tick: next?.toISOString() }, `${what} at ${next ? at(next) : 'never'}`);
    };

    /** The latest tick before now has no succeeded run: run it (--catch-up) or say it was missed. */
    const checkMissed = async (why: 'start-up' | 'missed tick'): Promise<void> => {
      for (let delay = 1000; !stopping; delay = Math.min(delay * 2, 60_000)) {
        let d: DueDecision;
        try {
          const client = await pool.connect();
          try {
            d = await checkDue(client, config.schema, spec, new Date());
          } finally {
            client.release();
          }
        } catch (err) {
          if (why === 'start-up' && ticks > 0) return; // a tick has fired since: the question is moot
          log.warn({ err: describeDbError(err, config.db), retry_in_s: delay / 1000 }, `cannot read the ledger to check for a missed run (${describeDbError(err, config.db)}); retrying in ${delay / 1000} s`);
          await sleep(delay, undefined, { signal: abort.signal }).catch(() => undefined);
          continue;
        }
        if (d.due) {
          const line = `${why}: ${describeDue(d, at(d.tick))}`;
          if (opts.catchUp) {
            log.warn({ tick_at: d.tick.toISOString(), reason: d.reason }, `${line}; catching up now (--catch-up)`);
            await runFor(d.tick, 'catch-up');
          } else {
            log.warn({ tick_at: d.tick.toISOString(), reason: d.reason, missed: true }, `${line}: a run was missed; start one with \`scorejob run\`, or restart the scheduler with --catch-up`);
          }
        } else if (d.reason !== 'no-tick') {
          log.info({ tick_at: d.tick.toISOString(), reason: d.reason, run_id: d.run.run_id }, `${why}: ${describeDue(d, at(d.tick))}`);
        }
        return;
      }
    };

    if (stopping) return ExitCode.ok;
    task = createTask(
      spec.expression,
      async (c) => {
        ticks++;
        try {
          await runFor(c.date, 'tick');
        } catch (err) {
          log.error({ err }, `tick ${at(c.date)}: ${(err as Error).message}`);
        }
      },
      { timezone, noOverlap: true, name: 'scorejob', logger: cronLogger(log) },
    );
    // noOverlap: node-cron does not call us while the previous tick's run is in flight; say so.
    task.on('execution:overlap', (c) => {
      log.warn({ tick_at: c.date.toISOString(), running_tick_at: current?.tick.toISOString() }, `tick ${at(c.date)} skipped: the run for tick ${current ? at(current.tick) : 'before it'} is still in flight`);
    });
    task.on('execution:missed', (c) => {
      log.warn({ tick_at: c.date.toISOString() }, `tick ${at(c.date)} was missed (the process or the machine was suspended or busy)`);
      if (opts.catchUp) void checkMissed('missed tick');
    });
    await task.start();
    log.info(
      { cron: spec.expression, timezone, catch_up: opts.catchUp, next_tick: task.getNextRun()?.toISOString(), run_args: opts.runArgs },
      `scheduler started: "${spec.expression}" (${zone}); next tick at ${at(task.getNextRun() ?? new Date(NaN))}`,
    );
    const missed = checkMissed('start-up');

    await new Promise<void>((resolveStop) => (abort.signal.aborted ? resolveStop() : abort.signal.addEventListener('abort', () => resolveStop(), { once: true })));
    await task.destroy();
    await missed;
    await active;
    log.info({ signal: stopping, forced }, forced ? `scheduler stopped; the run was stopped at once (${forced})` : 'scheduler stopped');
    return forced === undefined ? ExitCode.ok : forced === 'SIGINT' ? ExitCode.sigint : ExitCode.sigterm;
  } finally {
    signals.off('SIGTERM', onSignal);
    signals.off('SIGINT', onSignal);
    await task?.destroy();
    await pool.end().catch(() => undefined);
  }
}

/**
 * Start-up: a database that is there must be migrated (else exit 2, like every command); one that is
 * away is not fatal: ticks start runs regardless (each child connects afresh), the missed-run check is
 * retried.
 */
async function startupCheck(pool: Pool, config: Config, log: Logger): Promise<void> {
  try {
    await checkConnection(pool, config.db);
  } catch (err) {
    if ((err as { exitCode?: number }).exitCode === ExitCode.usage) throw err;
    log.warn({ err: (err as Error).message }, `${(err as Error).message}; starting anyway: each run connects afresh, and the missed-run check is retried`);
    return;
  }
  const client = await pool.connect();
  try {
    await assertMigrated(client, config.schema);
  } finally {
    client.release();
  }
}

/** node-cron's own messages, into our log (it would print to the console otherwise). */
function cronLogger(log: Logger): CronLogger {
  return {
    info: (m) => log.debug({ component: 'node-cron' }, m),
    warn: (m) => log.debug({ component: 'node-cron' }, m),
    error: (m, err) => log.error({ component: 'node-cron', err: err ?? m }, m instanceof Error ? m.message : m),
    debug: (m) => log.debug({ component: 'node-cron' }, m instanceof Error ? m.message : m),
  };
}
