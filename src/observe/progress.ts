import type { Logger } from '../log.js';
import { formatClock, formatCount } from '../format.js';

/** Where a run reports its progress; chosen by the CLI (a library caller may leave it out). */
export interface ProgressOptions {
  /** A terminal for the live line (the CLI passes stderr when it is a TTY); without one, log lines. */
  tty?: ProgressTerminal | undefined;
  /** Milliseconds between progress log lines when there is no terminal; 0 for none. */
  intervalMs: number;
}

/** The little of a TTY stream the live line needs. */
export interface ProgressTerminal {
  write(s: string): unknown;
  columns?: number | undefined;
}

/** A run's progress at one moment: the fields of a progress log line. */
export interface ProgressSnapshot {
  customers_done: number;
  customers_total: number;
  chunks_done: number;
  chunks_total: number;
  elapsed_s: number;
  /** Rows (scored or rejected) per second in this process; a resume counts only its own. */
  rows_per_second: number;
  /** Seconds left at the current pace; null before the first chunk, and while waiting for the database. */
  eta_s: number | null;
  /** Seconds the run has been waiting for an unreachable database; null when it is not waiting. */
  waiting_s: number | null;
}

/** Counts customers and chunks as chunks commit, and turns them into rate and ETA. */
export class RunProgress {
  customersDone: number;
  chunksDone: number;
  /** Since when (Date.now()) the run waits for an unreachable database; undefined when it does not. */
  waitingSince: number | undefined;
  private readonly doneBefore: number;

  constructor(
    readonly customersTotal: number,
    readonly chunksTotal: number,
    done: { customers: number; chunks: number },
    private readonly startedAt = performance.now(),
  ) {
    this.customersDone = done.customers;
    this.chunksDone = done.chunks;
    this.doneBefore = done.customers;
  }

  chunkDone(rows: number): void {
    this.customersDone += rows;
    this.chunksDone++;
  }

  snapshot(now = performance.now(), wallNow = Date.now()): ProgressSnapshot {
    const elapsed = Math.max(0, now - this.startedAt) / 1000;
    const mine = this.customersDone - this.doneBefore;
    const rate = elapsed > 0 ? mine / elapsed : 0;
    const total = Math.max(this.customersTotal, this.customersDone);
    return {
      customers_done: this.customersDone,
      customers_total: total,
      chunks_done: this.chunksDone,
      chunks_total: this.chunksTotal,
      elapsed_s: Math.round(elapsed * 10) / 10,
      rows_per_second: Math.round(rate),
      // A rate measured before the database went away says nothing about when the run ends.
      eta_s: this.waitingSince === undefined && mine > 0 && rate > 0 ? Math.round((total - this.customersDone) / rate) : null,
      waiting_s: this.waitingSince === undefined ? null : Math.max(0, Math.round((wallNow - this.waitingSince) / 1000)),
    };
  }
}

function waitingWords(seconds: number): string {
  return `waiting for the database (${seconds} s)`;
}

function percent(s: ProgressSnapshot): number {
  return s.customers_total === 0 ? 100 : Math.min(100, (100 * s.customers_done) / s.customers_total);
}

/**
 * The live line: bar, customers, rate, chunks, elapsed, ETA; the bar goes first when the terminal is narrow, and the line never wraps.
 * @internal exported for tests
 */
export function formatProgressLine(s: ProgressSnapshot, columns = 120): string {
  const pct = percent(s);
  const width = 20;
  const filled = Math.round((pct / 100) * width);
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
  const figures =
    `${pct.toFixed(1).padStart(5)}%  ${formatCount(s.customers_done)}/${formatCount(s.customers_total)} customers  ` +
    `${formatCount(s.rows_per_second)} rows/s  chunks ${s.chunks_done}/${s.chunks_total}  elapsed ${formatClock(s.elapsed_s)}  ${s.waiting_s !== null ? waitingWords(s.waiting_s) : `ETA ${s.eta_s === null ? '—' : formatClock(s.eta_s)}`}`;
  const withBar = `scoring ${bar} ${figures}`;
  if (withBar.length < columns) return withBar;
  const plain = `scoring ${figures.trimStart()}`;
  return plain.length < columns ? plain : plain.slice(0, Math.max(0, columns - 1));
}

/**
 * The message of a progress log line (the figures are also its fields).
 * @internal exported for tests
 */
export function formatProgressMessage(s: ProgressSnapshot): string {
  return (
    `progress: ${formatCount(s.customers_done)} of ${formatCount(s.customers_total)} customers (${percent(s).toFixed(1)}%), ` +
    `${s.chunks_done} of ${s.chunks_total} chunks, ${formatCount(s.rows_per_second)} rows/s, elapsed ${formatClock(s.elapsed_s)}, ${s.waiting_s !== null ? waitingWords(s.waiting_s) : `ETA ${s.eta_s === null ? 'unknown' : formatClock(s.eta_s)}`}`
  );
}

export interface ProgressReporter {
  /** A chunk committed, or the run began or ended waiting for the database: redraw the live line (log lines keep their own pace). */
  update(): void;
  /** Clears the live line / stops the log timer. Safe to call twice. */
  stop(): void;
}

/**
 * On a terminal: a live line on it, redrawn when a chunk commits and every second (elapsed, ETA),
 * cleared at the end. Otherwise (cron, a pipe, a log file): an info log line every `intervalMs`,
 * never a bar.
 */
export function startProgress(progress: RunProgress, opts: ProgressOptions | undefined, log: Logger): ProgressReporter {
  if (!opts) return { update: () => undefined, stop: () => undefined };
  const tty = opts.tty;
  if (tty) {
    let drawn = false;
    let last = 0;
    const draw = () => {
      last = performance.now();
      drawn = true;
      // \r and "erase line": the line is redrawn in place and never scrolls.
      // A pseudo-terminal without a size reports 0 columns: assume 120 then.
      const columns = tty.columns !== undefined && tty.columns >= 20 ? tty.columns : 120;
      tty.write(`\r\x1b[2K${formatProgressLine(progress.snapshot(), columns)}`);
    };
    const timer = setInterval(draw, 1000);
    timer.unref();
    draw();
    return {
      update: () => {
        if (performance.now() - last >= 100) draw(); // many small chunks: at most ten redraws a second
      },
      stop: () => {
        clearInterval(timer);
        if (drawn) tty.write('\r\x1b[2K');
        drawn = false;
      },
    };
  }
  if (opts.intervalMs <= 0) return { update: () => undefined, stop: () => undefined };
  const timer = setInterval(() => {
    const s = progress.snapshot();
    log.info({ progress: true, ...s }, formatProgressMessage(s));
  }, opts.intervalMs);
  timer.unref();
  return { update: () => undefined, stop: () => clearInterval(timer) };
}
