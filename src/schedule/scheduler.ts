import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTask, type Logger as CronLogger, type ScheduledTask } from 'node-cron';
import type { Config } from '../config.js';
import { checkCronExpression, checkTimezone, formatTick, type CronSpec } from '../cronTicks.js';
import { describeDbError } from '../db/describeError.js';
import { assertMigrated } from '../db/migrate.js';
import { checkConnection, type Pool } from '../db/pool.js';
import { withSession } from '../db/session.js';
import { ExitCode, signalExitCode, toExitCode, UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseManifest } from '../model/manifest.js';
import { checkDue, describeDue, type DueDecision } from '../run/due.js';
import { withClient } from '../db/sql.js';
import { reportChildOutcome, startChildRun, type ChildRun } from './child.js';

/** Options of `scorejob schedule`. */
export interface ScheduleOptions {
  /** Cron expression (node-cron 4: 5 fields, or 6 with seconds first). */
  cron: string;
  /** IANA time zone of the expression; undefined: the system's. */
  timezone: string | undefined;
  /** Run at once for a latest tick that has no succeeded run (at start-up, and when node-cron reports a missed tick). */
  catchUp: boolean;
  /** `scorejob run` flags forwarded to every child (model, chunk size, backend, ...), already validated (src/cli/options.ts derives them). */
  runArgs: readonly string[];
  /** The model's manifest `name`: ticks are due, and runs locked, per model. */
  modelName: string;
}

/** A model directory that cannot work is refused at start-up (exit 2), not at every tick for a month. */
export async function checkModelDirectory(dir: string, flag: string): Promise<string> {
  const file = join(dir, 'manifest.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
    await access(join(dir, 'model.json'));
  } catch (err) {
    throw new UsageError(
      `${flag}: "${dir}" is not a model directory (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}: ${(err as { path?: string }).path ?? file})`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${file} is not JSON: ${(err as Error).message}`);
  }
  return parseManifest(json, file).name;
}

/**
 * `scorejob schedule`: a run in a child process at each tick, never two at once (node-cron's
 * noOverlap for ticks, one child at a time for catch-ups, the database lock across processes and
 * machines). A failed run is logged (and in the ledger) and the scheduler carries on. SIGTERM/SIGINT:
 * no more ticks, one SIGTERM forwarded to a run in flight (it stops after its chunk and is marked
 * interrupted), wait for it, exit 0; a second signal stops the run at once and exits 143/130.
 */
export async function runScheduler(ctx: { config: Config; log: Logger }, opts: ScheduleOptions, signals: NodeJS.EventEmitter = process): Promise<number> {
  checkCronExpression(opts.cron, '--cron');
  const timezone = opts.timezone === undefined ? undefined : checkTimezone(opts.timezone, '--timezone');
  const scheduler = new Scheduler(ctx.config, ctx.log, { ...opts, timezone });
  const onSignal = (signal: NodeJS.Signals) => scheduler.stop(signal);
  // Before anything async: a signal during start-up stops it too.
  signals.on('SIGTERM', onSignal);
  signals.on('SIGINT', onSignal);
  try {
    // Its own start-up check (startupCheck): a server away at start-up is not fatal here.
    return await withSession(ctx.config, { connections: 2, requires: 'nothing', client: false }, ({ pool }) => scheduler.run(pool));
  } finally {
    signals.off('SIGTERM', onSignal);
    signals.off('SIGINT', onSignal);
  }
}

/** One scheduler's state: the node-cron task, the child in flight, the stop request. */
class Scheduler {
  private readonly spec: CronSpec;
  /** The session's pool, for the ledger reads between runs (set by run()). */
  private session: Pool | undefined;
  private readonly stopped = new AbortController();
  private task: ScheduledTask | undefined;
  private current: ChildRun | undefined;
  /** The current child's life up to its report: what a stop waits for. */
  private active: Promise<void> | undefined;
  private stopping: NodeJS.Signals | undefined;
  private forced: NodeJS.Signals | undefined;
  private ticks = 0;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly opts: ScheduleOptions,
  ) {
    this.spec = { expression: opts.cron, timezone: opts.timezone };
  }

  private get pool(): Pool {
    if (this.session === undefined) throw new Error('the scheduler reads the ledger only while it runs');
    return this.session;
  }

  private at(tick: Date | null | undefined): string {
    return tick ? formatTick(tick, this.spec.timezone) : 'never';
  }

  async run(pool: Pool): Promise<number> {
    const { log, spec } = this;
    this.session = pool;
    try {
      await startupCheck(this.pool, this.config, log);
      if (this.stopping) return ExitCode.ok;
      const task = createTask(spec.expression, (c) => this.onTick(c.date), {
        timezone: spec.timezone,
        noOverlap: true,
        name: 'scorejob',
        logger: cronLogger(log),
      });
      this.task = task;
      // noOverlap: node-cron does not call us while the previous tick's run is in flight; say so.
      task.on('execution:overlap', (c) => this.logSkipped(c.date));
      task.on('execution:missed', (c) => {
        log.warn({ tick_at: c.date.toISOString() }, `tick ${this.at(c.date)} was missed (the process or the machine was suspended or busy)`);
        if (this.opts.catchUp) void this.checkMissed('missed tick');
      });
      await task.start();
      const zone = spec.timezone ?? `system time zone, ${Intl.DateTimeFormat().resolvedOptions().timeZone}`;
      const next = task.getNextRun();
      // A --metrics-push URL may carry basic-auth credentials: they stay out of the log.
      log.info(
        {
          cron: spec.expression,
          timezone: spec.timezone,
          catch_up: this.opts.catchUp,
          next_tick: next?.toISOString(),
          run_args: this.opts.runArgs.map((a) => a.replace(/\/\/[^/@\s]*@/, '//…@')),
        },
        `scheduler started: "${spec.expression}" (${zone}); next tick at ${this.at(next)}`,
      );
      const missed = this.checkMissed('start-up');
      await new Promise<void>((resolve) =>
        this.stopped.signal.aborted ? resolve() : this.stopped.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      await task.destroy();
      await missed;
      await this.active;
      const forced = this.forced;
      log.info({ signal: this.stopping, forced }, forced ? `scheduler stopped; the run was stopped at once (${forced})` : 'scheduler stopped');
      return forced === undefined ? ExitCode.ok : signalExitCode(forced);
    } finally {
      await this.task?.destroy();
    }
  }

  /** First signal: no more ticks, one SIGTERM to the run in flight. Second: that run stops at once. */
  stop(signal: NodeJS.Signals): void {
    const current = this.current;
    if (this.stopping) {
      if (current && !this.forced) {
        this.forced = signal;
        this.log.warn({ signal, child_pid: current.pid }, `${signal} again: stopping the run at once (its chunk in flight is rolled back)`);
        current.child.kill('SIGTERM');
      }
      return;
    }
    this.stopping = signal;
    this.stopped.abort();
    if (current) {
      this.log.warn(
        { signal, child_pid: current.pid, tick_at: current.tick.toISOString() },
        `${signal}: no more ticks; asking the run in flight (pid ${current.pid}) to stop after its chunk, then stopping (send it again to stop at once)`,
      );
      current.child.kill('SIGTERM');
    } else {
      this.log.info({ signal }, `${signal}: no run in flight; scheduler stopping`);
    }
  }

  private async onTick(tick: Date): Promise<void> {
    this.ticks++;
    try {
      await this.runFor(tick, 'tick');
    } catch (err) {
      this.log.error({ err }, `tick ${this.at(tick)}: ${(err as Error).message}`);
    }
  }

  private logSkipped(tick: Date): void {
    const running = this.current?.tick;
    this.log.warn(
      { tick_at: tick.toISOString(), running_tick_at: running?.toISOString() },
      `tick ${this.at(tick)} skipped: the run for tick ${running ? this.at(running) : 'before it'} is still in flight`,
    );
  }

  /** Starts the child for a tick unless one is in flight; resolves when it has ended and been reported. */
  private runFor(tick: Date, why: 'tick' | 'catch-up'): Promise<void> {
    if (this.stopping) return Promise.resolve();
    if (this.current) {
      this.logSkipped(tick);
      return Promise.resolve();
    }
    const run = startChildRun(this.config, this.spec, tick, this.opts.runArgs);
    this.current = run;
    this.log.info(
      { tick_at: tick.toISOString(), child_pid: run.pid, why },
      `${why === 'tick' ? 'tick' : 'catch-up for tick'} ${this.at(tick)}: run started in child process ${run.pid ?? '?'}`,
    );
    this.active = (async () => {
      const outcome = await run.done;
      await reportChildOutcome(this.log, this.pool, this.config.schema, run, outcome, this.at(tick));
      this.current = undefined;
      if (!this.stopping && this.task) {
        const next = this.task.getNextRun();
        this.log.info({ cron: this.spec.expression, timezone: this.spec.timezone, next_tick: next?.toISOString() }, `next tick at ${this.at(next)}`);
      }
    })();
    return this.active;
  }

  /** Whether the latest tick before now has no succeeded run: run it (--catch-up) or say it was missed. Retries while the database is away. */
  private async checkMissed(why: 'start-up' | 'missed tick'): Promise<void> {
    const { log } = this;
    for (let delay = 1000; !this.stopping; delay = Math.min(delay * 2, 60_000)) {
      let d: DueDecision;
      try {
        d = await this.readDue();
      } catch (err) {
        if (why === 'start-up' && this.ticks > 0) return; // a tick has fired since: the question is moot
        const problem = describeDbError(err, this.config.db);
        log.warn({ problem, retry_in_s: delay / 1000 }, `cannot read the ledger to check for a missed run (${problem}); retrying in ${delay / 1000} s`);
        await sleep(delay, undefined, { signal: this.stopped.signal }).catch(() => undefined);
        continue;
      }
      if (!d.due) {
        if (d.reason !== 'no-tick')
          log.info({ tick_at: d.tick.toISOString(), reason: d.reason, run_id: d.run.run_id }, `${why}: ${describeDue(d, this.at(d.tick))}`);
        return;
      }
      const line = `${why}: ${describeDue(d, this.at(d.tick))}`;
      if (!this.opts.catchUp) {
        log.warn(
          { tick_at: d.tick.toISOString(), reason: d.reason, missed: true },
          `${line}: a run was missed; start one with \`scorejob run\`, or restart the scheduler with --catch-up`,
        );
        return;
      }
      log.warn({ tick_at: d.tick.toISOString(), reason: d.reason }, `${line}; catching up now (--catch-up)`);
      await this.runFor(d.tick, 'catch-up');
      return;
    }
  }

  private async readDue(): Promise<DueDecision> {
    return withClient(this.pool, (client) => checkDue(client, this.config.schema, this.opts.modelName, this.spec, new Date()));
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
    if (toExitCode(err) === ExitCode.usage) throw err;
    log.warn({ err: (err as Error).message }, `${(err as Error).message}; starting anyway: each run connects afresh, and the missed-run check is retried`);
    return;
  }
  await withClient(pool, (client) => assertMigrated(client, config.schema));
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
