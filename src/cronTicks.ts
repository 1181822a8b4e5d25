import { createTask, parse, validateDetailed, type ScheduledTask } from 'node-cron';
import { UsageError } from './errors.js';

/**
 * Tick arithmetic on node-cron's own terms, so that what `schedule` fires and what `--catch-up` and
 * `run --if-due` call "the latest tick" are the same instants: node-cron parses and matches; what it
 * lacks (the tick before a given instant) is a backward walk over its parsed fields here.
 *
 * Why not a library's previous-tick function: measured against tests/unit/schedule/due.test.ts (which
 * compares with the ticks node-cron fires under fake timers), neither agrees with node-cron across DST.
 * croner 11 (`previousRuns`, `domAndDow: true`) returns a wall-clock time skipped by spring-forward as a
 * tick at the end of the gap (Berlin `30 2 * * *` on 2026-03-29: 01:00Z), where node-cron does not
 * fire, and of a time repeated by fall-back it returns the second occurrence where node-cron fires the
 * first. cron-parser 5 (`prev()`) skips the gap like node-cron, but also returns the second occurrence
 * of a repeated time (New York 01:30 EST, 06:30Z, on 2026-11-01), and its day-of-month/day-of-week rule
 * is OR where node-cron's is AND (`0 0 13 * 5`: every 13th and every Friday vs Friday the 13th).
 */

/** A cron expression and the time zone its wall-clock fields are read in. */
export interface CronSpec {
  /** 5 fields, or 6 with seconds first; nicknames such as `@monthly` too (node-cron 4 syntax). */
  expression: string;
  /** IANA zone, e.g. `Europe/Berlin`; undefined: the system's zone (TZ, /etc/localtime), like cron. */
  timezone?: string | undefined;
}

/** Refuses an expression node-cron cannot schedule, naming the flag and the field at fault. */
export function checkCronExpression(expression: string, flag: string): void {
  let problems: string[];
  try {
    const v = validateDetailed(expression);
    problems = v.valid ? [] : v.errors.map((e) => (e.field === 'expression' ? e.message : `${e.field}: ${e.message}`));
  } catch (err) {
    problems = [err instanceof Error ? err.message : String(err)];
  }
  if (problems.length > 0) {
    throw new UsageError(
      `${flag}: "${expression}" is not a cron expression (${problems.join('; ')}); expected 5 fields "minute hour day-of-month month day-of-week" or 6 with seconds first, e.g. "30 2 1 * *"`,
    );
  }
}

/** Refuses a time zone Intl does not know, naming the flag; returns the canonical name. */
export function checkTimezone(timezone: string, flag: string): string {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: timezone }).resolvedOptions().timeZone;
  } catch {
    throw new UsageError(`${flag}: "${timezone}" is not a time zone (use an IANA name such as UTC, Europe/Berlin or America/New_York)`);
  }
}

/** How far back to look for a tick: node-cron looks 100 years ahead, an expression may fire once in 28. */
const maxDaysBack = 366 * 30;
/** A tick at or before `now` can read up to this much later on the wall clock than `now` (a clock set back for DST). */
const wallClockSlackSeconds = 3 * 3600;

/**
 * The most recent tick at or before `now` (second precision, like node-cron), or undefined when the
 * expression has not fired in the last 30 years. A wall-clock time skipped by a DST change is no
 * tick (node-cron does not fire then); one repeated by a DST change is one tick, the instant
 * node-cron picks.
 */
export function previousTick(spec: CronSpec, now: Date): Date | undefined {
  const fields = parse(spec.expression);
  const nowMs = Math.floor(now.getTime() / 1000) * 1000;
  const full = matcher(spec.expression, spec.timezone);
  // Days are matched on their own, in UTC, by node-cron itself (L, W, #, names, ranges included).
  const days = matcher(`0 0 0 ${fields.dayOfMonth.join(',')} ${fields.month.join(',')} ${fields.dayOfWeek.join(',')}`, 'UTC');
  try {
    const hours = [...fields.hour].sort((a, b) => b - a);
    const minutes = [...fields.minute].sort((a, b) => b - a);
    const seconds = [...fields.second].sort((a, b) => b - a);
    const today = wallClock(new Date(nowMs), spec.timezone);
    const nowSecondOfDay = today.hour * 3600 + today.minute * 60 + today.second;
    let day = Date.UTC(today.year, today.month - 1, today.day);
    for (let i = 0; i < maxDaysBack; i++, day -= 86_400_000) {
      if (!days.match(new Date(day))) continue;
      const d = new Date(day);
      for (const hour of hours) {
        for (const minute of minutes) {
          for (const second of seconds) {
            if (i === 0 && hour * 3600 + minute * 60 + second > nowSecondOfDay + wallClockSlackSeconds) continue;
            const ts = wallClockToInstant({ year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour, minute, second }, spec.timezone);
            if (ts <= nowMs && full.match(new Date(ts))) return new Date(ts);
          }
        }
      }
    }
    return undefined;
  } finally {
    void full.destroy();
    void days.destroy();
  }
}

/** The tick as the wall clock of its zone shows it: `2026-12-01T02:30:00+01:00`. */
export function formatTick(tick: Date, timezone: string | undefined): string {
  const p = wallClock(tick, timezone);
  const offset = offsetMinutes(tick, timezone);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  const zone = offset === 0 ? 'Z' : `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  return `${p.year}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}${zone}`;
}

/** A stopped node-cron task used only for `match` (created tasks are registered; callers destroy them). */
function matcher(expression: string, timezone: string | undefined): ScheduledTask {
  return createTask(expression, () => undefined, timezone === undefined ? {} : { timezone });
}

interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const partsFormatters = new Map<string, Intl.DateTimeFormat>();
const offsetFormatters = new Map<string, Intl.DateTimeFormat>();

function wallClock(date: Date, timezone: string | undefined): WallClock {
  const key = timezone ?? '';
  let f = partsFormatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    });
    partsFormatters.set(key, f);
  }
  const p: Record<string, string> = {};
  for (const part of f.formatToParts(date)) p[part.type] = part.value;
  return { year: Number(p.year), month: Number(p.month), day: Number(p.day), hour: Number(p.hour) % 24, minute: Number(p.minute), second: Number(p.second) };
}

/** UTC offset of the zone at that instant, in minutes east of Greenwich. */
function offsetMinutes(date: Date, timezone: string | undefined): number {
  const key = timezone ?? '';
  let f = offsetFormatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: timezone, timeZoneName: 'shortOffset' });
    offsetFormatters.set(key, f);
  }
  const name = f.formatToParts(date).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
  const m = /^GMT([+-])(\d{1,2})(?::(\d{2}))?$/.exec(name);
  if (!m) return 0;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3] ?? 0));
}

/**
 * The instant a wall-clock time stands for, resolved exactly as node-cron 4 resolves it when it plans
 * its next tick (two offset probes; a repeated time takes the first probe that reads back, a skipped
 * one the later candidate, which `match` then rejects). Same rule, same ticks.
 */
function wallClockToInstant(w: WallClock, timezone: string | undefined): number {
  const guess = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  const first = offsetMinutes(new Date(guess), timezone);
  const candidate1 = guess - first * 60_000;
  const second = offsetMinutes(new Date(candidate1), timezone);
  if (second === first) return candidate1;
  const candidate2 = guess - second * 60_000;
  if (readsBack(candidate1, w, timezone)) return candidate1;
  if (readsBack(candidate2, w, timezone)) return candidate2;
  return Math.max(candidate1, candidate2);
}

function readsBack(ts: number, w: WallClock, timezone: string | undefined): boolean {
  const p = wallClock(new Date(ts), timezone);
  return p.year === w.year && p.month === w.month && p.day === w.day && p.hour === w.hour && p.minute === w.minute && p.second === w.second;
}
