import { createTask } from 'node-cron';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkCronExpression, checkTimezone, formatTick, previousTick, type CronSpec } from '../../../src/cronTicks.js';
import { decideDue, runCoversTick, type TickRun } from '../../../src/run/due.js';

const at = (iso: string) => new Date(iso);
const prev = (expression: string, timezone: string | undefined, now: string) => previousTick({ expression, timezone }, at(now))?.toISOString();

let nextId = 1;
function run(over: Partial<TickRun> & { started_at: Date }): TickRun {
  return {
    run_id: String(nextId++),
    status: 'succeeded',
    trigger: 'cron',
    dry_run: false,
    tick_at: null,
    host: 'h',
    pid: 1,
    error_kind: null,
    waiting_announced_at: null,
    ...over,
  };
}

describe('previousTick: the latest tick at or before now', () => {
  it('monthly at 02:30 on the 1st (the default), around the tick', () => {
    expect(prev('30 2 1 * *', 'UTC', '2026-11-24T19:56:00Z')).toBe('2026-11-01T02:30:00.000Z');
    expect(prev('30 2 1 * *', 'UTC', '2026-12-01T02:29:59.999Z')).toBe('2026-11-01T02:30:00.000Z');
    expect(prev('30 2 1 * *', 'UTC', '2026-12-01T02:30:00.000Z')).toBe('2026-12-01T02:30:00.000Z');
    expect(prev('30 2 1 * *', 'UTC', '2026-12-01T02:30:00.999Z')).toBe('2026-12-01T02:30:00.000Z');
  });

  it('crosses month and year boundaries', () => {
    expect(prev('30 2 1 * *', 'UTC', '2027-01-01T00:00:00Z')).toBe('2026-12-01T02:30:00.000Z');
    expect(prev('0 0 1 1 *', 'UTC', '2026-06-15T00:00:00Z')).toBe('2026-01-01T00:00:00.000Z');
    expect(prev('0 0 L * *', 'UTC', '2026-03-15T00:00:00Z')).toBe('2026-02-28T00:00:00.000Z');
    expect(prev('0 0 29 2 *', 'UTC', '2026-11-24T00:00:00Z')).toBe('2024-02-29T00:00:00.000Z');
    expect(prev('@monthly', 'UTC', '2026-11-24T00:00:00Z')).toBe('2026-11-01T00:00:00.000Z');
  });

  it('reads the wall clock in the time zone: the same expression is another instant elsewhere', () => {
    // 00:00 on the 1st in Berlin (CET, +01:00) is still the 30th of the previous month in UTC.
    expect(prev('0 0 1 * *', 'Europe/Berlin', '2026-11-30T23:30:00Z')).toBe('2026-11-30T23:00:00.000Z');
    expect(prev('0 0 1 * *', 'UTC', '2026-11-30T23:30:00Z')).toBe('2026-11-01T00:00:00.000Z');
    expect(prev('0 0 1 * *', 'America/New_York', '2026-12-01T04:59:59Z')).toBe('2026-11-01T04:00:00.000Z'); // EDT then
    expect(prev('0 0 1 * *', 'America/New_York', '2026-12-01T05:00:00Z')).toBe('2026-12-01T05:00:00.000Z'); // EST now
    expect(prev('0 0 1 * *', 'Asia/Kolkata', '2026-11-24T00:00:00Z')).toBe('2026-10-31T18:30:00.000Z');
  });

  it('DST: a wall-clock time the clock skips is no tick (node-cron does not fire then)', () => {
    // Europe/Berlin, 2026-03-29: 02:00 CET -> 03:00 CEST; 02:30 does not exist that day.
    expect(prev('30 2 * * *', 'Europe/Berlin', '2026-03-29T12:00:00Z')).toBe('2026-03-28T01:30:00.000Z');
    expect(prev('30 2 * * *', 'Europe/Berlin', '2026-03-30T12:00:00Z')).toBe('2026-03-30T00:30:00.000Z');
  });

  it('DST: a wall-clock time the clock repeats is one tick', () => {
    // America/New_York, 2026-11-01 (the 1st is a Sunday): 02:00 EDT -> 01:00 EST; 01:30 happens twice.
    expect(prev('30 1 * * *', 'America/New_York', '2026-11-01T07:00:00Z')).toBe('2026-11-01T05:30:00.000Z');
    // The monthly default on that very day: 02:30 exists once, in EST.
    expect(prev('30 2 1 * *', 'America/New_York', '2026-11-01T07:29:59Z')).toBe('2026-10-01T06:30:00.000Z');
    expect(prev('30 2 1 * *', 'America/New_York', '2026-11-01T07:30:00Z')).toBe('2026-11-01T07:30:00.000Z');
  });

  it('seconds-level expressions', () => {
    expect(prev('*/5 * * * * *', 'UTC', '2026-11-24T10:00:07.300Z')).toBe('2026-11-24T10:00:05.000Z');
    expect(prev('* * * * * *', 'UTC', '2026-11-24T10:00:07.300Z')).toBe('2026-11-24T10:00:07.000Z');
  });

  it('the system time zone when none is given (TZ of this process)', () => {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    expect(prev('30 2 1 * *', undefined, '2026-11-24T00:00:00Z')).toBe(prev('30 2 1 * *', zone, '2026-11-24T00:00:00Z'));
  });

  it('formats a tick on its zone’s wall clock', () => {
    expect(formatTick(at('2026-11-30T23:00:00Z'), 'Europe/Berlin')).toBe('2026-12-01T00:00:00+01:00');
    expect(formatTick(at('2026-10-31T18:30:00Z'), 'Asia/Kolkata')).toBe('2026-11-01T00:00:00+05:30');
    expect(formatTick(at('2026-11-01T02:30:00Z'), 'UTC')).toBe('2026-11-01T02:30:00Z');
  });
});

describe('previousTick agrees with the ticks node-cron actually fires', () => {
  afterEach(() => void vi.useRealTimers());

  /** Every tick node-cron fires in [from, from + hours), under fake timers. */
  async function firedTicks(spec: CronSpec, from: string, hours: number): Promise<Date[]> {
    vi.useFakeTimers({ now: at(from), toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const fired: Date[] = [];
    const task = createTask(spec.expression, (c) => void fired.push(c.date), spec.timezone ? { timezone: spec.timezone } : {});
    await task.start();
    await vi.advanceTimersByTimeAsync(hours * 3_600_000);
    await task.destroy();
    vi.useRealTimers();
    return fired;
  }

  const cases: [string, CronSpec, string, number][] = [
    ['half-hourly across the New York fall-back', { expression: '*/30 * * * *', timezone: 'America/New_York' }, '2026-10-31T20:00:00Z', 30],
    ['half-hourly across the Berlin spring-forward', { expression: '*/30 * * * *', timezone: 'Europe/Berlin' }, '2026-03-28T20:00:00Z', 30],
    [
      'daily 02:30 across the Berlin spring-forward (no tick on the 29th)',
      { expression: '30 2 * * *', timezone: 'Europe/Berlin' },
      '2026-03-27T00:00:00Z',
      24 * 4,
    ],
    ['daily 02:30 across the Berlin fall-back', { expression: '30 2 * * *', timezone: 'Europe/Berlin' }, '2026-10-23T00:00:00Z', 24 * 4],
    ['monthly default in New York over the 1 November DST change', { expression: '30 2 1 * *', timezone: 'America/New_York' }, '2026-09-15T00:00:00Z', 24 * 80],
  ];

  for (const [name, spec, from, hours] of cases) {
    it(name, async () => {
      const fired = await firedTicks(spec, from, hours);
      expect(fired.length).toBeGreaterThan(1);
      // Probe just before, at and just after every fired tick: the latest fired tick <= probe.
      for (let i = 1; i < fired.length; i++) {
        const tick = fired[i] as Date;
        const before = fired[i - 1] as Date;
        expect(previousTick(spec, new Date(tick.getTime() - 1))?.toISOString(), `just before ${tick.toISOString()}`).toBe(before.toISOString());
        expect(previousTick(spec, tick)?.toISOString()).toBe(tick.toISOString());
        expect(previousTick(spec, new Date(tick.getTime() + 999))?.toISOString()).toBe(tick.toISOString());
      }
    });
  }
});

describe('decideDue: does the latest tick still need a run?', () => {
  const tick = at('2026-12-01T02:30:00Z');

  it('an empty ledger: due (the run was missed)', () => {
    expect(decideDue(tick, [], false)).toMatchObject({ due: true, reason: 'never-ran', tick });
  });

  it('a succeeded run started at or after the tick: done, whatever triggered it', () => {
    expect(decideDue(tick, [run({ started_at: tick })], false)).toMatchObject({ due: false, reason: 'done' });
    expect(decideDue(tick, [run({ started_at: at('2026-12-03T10:00:00Z'), trigger: 'manual' })], false)).toMatchObject({ due: false, reason: 'done' });
  });

  it("last month's succeeded run does not serve this month's tick", () => {
    expect(decideDue(tick, [run({ started_at: at('2026-11-01T02:30:00Z'), tick_at: at('2026-11-01T02:30:00Z') })], false)).toMatchObject({
      due: true,
      reason: 'never-ran',
    });
    expect(decideDue(tick, [run({ started_at: at('2026-12-01T02:29:59.999Z') })], false)).toMatchObject({ due: true });
  });

  it('a run for the tick (tick_at) counts even when the database clock says it started a little before', () => {
    expect(decideDue(tick, [run({ started_at: at('2026-12-01T02:29:58Z'), tick_at: tick })], false)).toMatchObject({ due: false, reason: 'done' });
  });

  it('dry runs publish nothing and serve no tick', () => {
    const dry = run({ started_at: at('2026-12-01T03:00:00Z'), dry_run: true });
    expect(runCoversTick(dry, tick)).toBe(false);
    expect(decideDue(tick, [dry], false)).toMatchObject({ due: true, reason: 'never-ran' });
  });

  it('a failed or interrupted run for the tick leaves it due; a later success makes it done', () => {
    const failed = run({ started_at: at('2026-12-01T02:30:01Z'), status: 'failed', tick_at: tick });
    expect(decideDue(tick, [failed], false)).toMatchObject({ due: true, reason: 'failed', run: failed });
    const interrupted = run({ started_at: at('2026-12-01T03:00:00Z'), status: 'interrupted' });
    expect(decideDue(tick, [failed, interrupted], false)).toMatchObject({ due: true, reason: 'interrupted', run: interrupted });
    const ok = run({ started_at: at('2026-12-01T04:00:00Z') });
    expect(decideDue(tick, [failed, interrupted, ok], false)).toMatchObject({ due: false, reason: 'done', run: ok });
  });

  it('a run a publish gate stopped waits for a person: not due (no retry); a later run or success decides again', () => {
    const gated = run({ started_at: at('2026-12-01T02:30:01Z'), status: 'failed', error_kind: 'gate', tick_at: tick });
    expect(decideDue(tick, [gated], false)).toMatchObject({ due: false, reason: 'waiting', run: gated });
    // A failure of another kind (the database went away) is resumed: due, naming the run.
    const lost = run({ started_at: at('2026-12-01T05:00:00Z'), status: 'failed', error_kind: 'database' });
    expect(decideDue(tick, [gated, lost], false)).toMatchObject({ due: true, reason: 'failed', run: lost });
    const forced = { ...gated, status: 'succeeded' as const, error_kind: null };
    expect(decideDue(tick, [forced], false)).toMatchObject({ due: false, reason: 'done' });
  });

  it('a running run: in progress while a process holds the lock, due when its process is gone', () => {
    const running = run({ started_at: at('2026-12-01T02:30:01Z'), status: 'running', tick_at: tick });
    expect(decideDue(tick, [running], true)).toMatchObject({ due: false, reason: 'in-progress', run: running });
    expect(decideDue(tick, [running], false)).toMatchObject({ due: true, reason: 'stale', run: running });
  });

  it('no tick in 30 years: nothing is due', () => {
    expect(decideDue(undefined, [], false)).toMatchObject({ due: false, reason: 'no-tick' });
  });
});

describe('catch-up and --if-due across month boundaries and time zones', () => {
  // What `scorejob run --if-due "0 0 1 * *" --timezone TZ` and `schedule --catch-up` compute.
  const decide = (timezone: string, now: string, runs: TickRun[]) => decideDue(previousTick({ expression: '0 0 1 * *', timezone }, at(now)), runs, false);
  const lateNovemberUtcRun = run({ started_at: at('2026-11-30T23:30:00Z') });

  it('a run at 23:30 UTC on 30 November already serves December in Berlin (00:30 local on the 1st)…', () => {
    expect(decide('Europe/Berlin', '2026-12-01T06:00:00Z', [lateNovemberUtcRun])).toMatchObject({ due: false, reason: 'done' });
  });

  it('…but not in UTC, where December starts half an hour later', () => {
    expect(decide('UTC', '2026-12-01T06:00:00Z', [lateNovemberUtcRun])).toMatchObject({ due: true, tick: at('2026-12-01T00:00:00Z') });
  });

  it('before the local month starts, the latest tick is last month’s', () => {
    const novRun = run({ started_at: at('2026-11-01T05:00:00Z') });
    // 04:00 UTC on 1 December is still 30 November 23:00 in New York: November's tick, served.
    expect(decide('America/New_York', '2026-12-01T04:00:00Z', [novRun])).toMatchObject({ due: false, reason: 'done', tick: at('2026-11-01T04:00:00Z') });
    expect(decide('America/New_York', '2026-12-01T05:00:00Z', [novRun])).toMatchObject({ due: true, tick: at('2026-12-01T05:00:00Z') });
  });

  it('across a DST change the tick moves by an hour in UTC, and the decision with it', () => {
    // Berlin: 1 November 00:00 is CET (+01:00) = 31 October 23:00Z (DST ended on 25 October).
    const octRun = run({ started_at: at('2026-10-31T22:30:00Z') }); // 23:30 CET on the 31st: October's
    expect(decide('Europe/Berlin', '2026-11-10T00:00:00Z', [octRun])).toMatchObject({ due: true, tick: at('2026-10-31T23:00:00Z') });
    const novRun = run({ started_at: at('2026-10-31T23:00:00Z') });
    expect(decide('Europe/Berlin', '2026-11-10T00:00:00Z', [octRun, novRun])).toMatchObject({ due: false, reason: 'done', run: novRun });
  });
});

describe('validation names the flag', () => {
  it('a bad cron expression', () => {
    expect(() => checkCronExpression('30 2 1 *', '--cron')).toThrow(/^--cron: "30 2 1 \*" is not a cron expression \(expected 5 or 6 fields but got 4\)/);
    expect(() => checkCronExpression('61 * * * *', '--if-due')).toThrow(/^--if-due: .*minute/);
    expect(() => checkCronExpression('0 0 31 2 *', '--cron')).toThrow(/impossible day of month/);
    expect(() => checkCronExpression('*/5 * * * * *', '--cron')).not.toThrow();
  });

  it('a bad time zone', () => {
    expect(() => checkTimezone('Mars/Olympus', '--timezone')).toThrow(/^--timezone: "Mars\/Olympus" is not a time zone/);
    expect(checkTimezone('Europe/Berlin', '--timezone')).toBe('Europe/Berlin');
  });
});
