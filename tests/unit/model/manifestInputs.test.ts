import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { parseDuration } from '../../../src/features/readiness/duration.js';
import { parseManifest } from '../../../src/model/manifest.js';

const file = 'models/x/manifest.json';

function manifest(extra: Record<string, unknown>): Record<string, unknown> {
  return { name: 'm', version: '1', features: [{ column: 'a', transform: 'boolean' }], output: { name: 'p' }, ...extra };
}

function messageOf(extra: Record<string, unknown>): string {
  try {
    parseManifest(manifest(extra), file);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected the manifest to be refused');
}

describe('manifest source.ready_when and checks', () => {
  it('reads source.ready_when beside the source table', () => {
    const m = parseManifest(manifest({ source: { table: 'crm.customers', ready_when: 'SELECT true' } }), file);
    expect(m.readyWhen).toBe('SELECT true');
    expect(m.source).toEqual({ table: 'crm.customers', key: 'customer_id' });
    expect(parseManifest(manifest({}), file).readyWhen).toBeUndefined();
  });

  it('refuses an empty or non-string ready_when, naming the field', () => {
    expect(messageOf({ source: { ready_when: ' ' } })).toMatch(/^models\/x\/manifest\.json: source\.ready_when must be a SQL query returning one boolean/);
    expect(messageOf({ source: { ready_when: true } })).toMatch(/source\.ready_when must be a SQL query/);
  });

  it('reads checks with default limits; false or absence turns a check off', () => {
    const m = parseManifest(
      manifest({ checks: { row_count: {}, null_rate: { max_change_pp: 2 }, assertions: [{ name: 'no_negative_income', sql: 'SELECT 1' }] } }),
      file,
    );
    expect(m.checks).toEqual({ rowCount: { maxChange: 0.2 }, nullRate: { maxChangePp: 2 }, assertions: [{ name: 'no_negative_income', sql: 'SELECT 1' }] });
    expect(parseManifest(manifest({ checks: { row_count: false } }), file).checks).toEqual({ assertions: [] });
    expect(parseManifest(manifest({}), file).checks).toBeUndefined();
  });

  it('refuses misspelt fields, bad limits and clashing assertion names', () => {
    expect(messageOf({ checks: { row_counts: {} } })).toBe(`${file}: checks.row_counts is not a known field (expected row_count, null_rate, assertions)`);
    expect(messageOf({ checks: { row_count: { max_change: -1 } } })).toBe(`${file}: checks.row_count.max_change must be a number >= 0 (got -1)`);
    expect(messageOf({ checks: { row_count: { limit: 1 } } })).toBe(`${file}: checks.row_count.limit is not a known field (expected max_change)`);
    expect(messageOf({ checks: { assertions: [{ name: 'row_count', sql: 'SELECT 1' }] } })).toBe(
      `${file}: checks.assertions[0].name "row_count" is already used (a built-in check)`,
    );
    expect(messageOf({ checks: { assertions: [{ name: 'Bad Name', sql: 'SELECT 1' }] } })).toMatch(/checks\.assertions\[0\]\.name must be a lower-case name/);
    expect(messageOf({ checks: { assertions: [{ name: 'a' }] } })).toMatch(/checks\.assertions\[0\]\.sql must be a query returning the keys of offending rows/);
  });
});

describe('--ready-deadline durations', () => {
  it('reads s, m, h, d and combinations; a bare number is seconds', () => {
    expect(parseDuration('90m', '--ready-deadline')).toBe(90 * 60_000);
    expect(parseDuration('1h30m', '--ready-deadline')).toBe(90 * 60_000);
    expect(parseDuration('2d', '--ready-deadline')).toBe(2 * 86_400_000);
    expect(parseDuration('45', '--ready-deadline')).toBe(45_000);
  });

  it('refuses what is not a duration, naming the flag', () => {
    expect(() => parseDuration('6 hours', '--ready-deadline')).toThrow('--ready-deadline: "6 hours" is not a duration; write it like 90m, 6h, 2d or 1h30m');
    expect(() => parseDuration('0h', 'SCOREJOB_READY_DEADLINE')).toThrow('SCOREJOB_READY_DEADLINE: "0h" must be more than 0 and at most 90d');
  });
});
