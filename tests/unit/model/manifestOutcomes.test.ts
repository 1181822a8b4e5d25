import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { parseManifest } from '../../../src/model/manifest.js';

const file = 'models/x/manifest.json';

function manifest(outcomes: unknown): Record<string, unknown> {
  return {
    name: 'm',
    version: '1',
    features: [{ column: 'a', transform: 'raw' }],
    output: { name: 'churn_probability' },
    outcomes,
  };
}

function messageOf(outcomes: unknown): string {
  try {
    parseManifest(manifest(outcomes), file);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected a UsageError');
}

describe('manifest outcomes', () => {
  it('a table with a horizon takes the default column names and absent = unknown', () => {
    expect(parseManifest(manifest({ table: 'crm.churn_events', horizon: '90 days' }), file).outcomes).toEqual({
      table: 'crm.churn_events',
      key: 'customer_id',
      eventTime: 'event_time',
      label: 'label',
      horizon: '90 days',
      absent: 'unknown',
    });
  });

  it('a query with its own column names and absent = negative', () => {
    const o = parseManifest(
      manifest({
        query: 'SELECT id, churned_at, true AS churned FROM churns',
        key: 'id',
        event_time: 'churned_at',
        label: 'churned',
        horizon: '3 months',
        absent: 'negative',
      }),
      file,
    ).outcomes;
    expect(o).toMatchObject({
      query: 'SELECT id, churned_at, true AS churned FROM churns',
      key: 'id',
      eventTime: 'churned_at',
      label: 'churned',
      horizon: '3 months',
      absent: 'negative',
    });
  });

  it('no manifest outcomes: the field stays absent', () => {
    const m = manifest(undefined);
    delete m.outcomes;
    expect(parseManifest(m, file).outcomes).toBeUndefined();
  });

  it.each([
    [{ horizon: '90 days' }, 'models/x/manifest.json: outcomes.table and query: give exactly one (a table or view name, or a SELECT)'],
    [{ table: 't', query: 'SELECT 1', horizon: '90 days' }, 'outcomes.query and query: give exactly one'],
    [{ table: 't' }, 'outcomes.horizon is required: how long after a run is published its outcomes count, e.g. "90 days"'],
    [{ table: 't', horizon: '90' }, 'outcomes.horizon must be a whole number and a unit (days, weeks, months, years), e.g. "90 days" (got "90")'],
    [{ table: 't', horizon: '90 days', absent: 'zero' }, 'outcomes.absent must be "negative" or "unknown" (got "zero")'],
    [{ table: 't', horizon: '90 days', lable: 'x' }, 'outcomes.lable is not a known field'],
    [{ query: 'DELETE FROM t', horizon: '90 days' }, 'outcomes.query must be a SELECT'],
    [{ table: 'a.b.c', horizon: '90 days' }, 'outcomes.table must be "table" or "schema.table" (got "a.b.c")'],
    [{ table: 't', horizon: '90 days', label: 7 }, 'outcomes.label must be a non-empty string (got 7)'],
    ['t', 'outcomes must be a JSON object'],
  ])('%j is refused naming the field', (outcomes, message) => {
    const m = messageOf(outcomes);
    expect(m).toContain(message);
    expect(m).not.toContain('\n');
  });
});
