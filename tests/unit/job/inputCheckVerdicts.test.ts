import { describe, expect, it } from 'vitest';
import { checkAssertion, checkNullRates, checkRowCount, describeFailures } from '../../../src/features/input-checks/evaluate.js';

const baseline = {
  runId: '41',
  rows: 5_000_000,
  nullFractions: new Map([
    ['income', 0.02],
    ['age', 0.1],
  ]),
};

describe('input check verdicts', () => {
  it('row_count: within the limit passes, beyond it fails, both ways, with the figures in one line', () => {
    expect(checkRowCount(3_500_000, baseline, 0.2)).toMatchObject({ outcome: 'failed', detail: '3,500,000 rows vs 5,000,000 in run 41 (−30.0%), limit 20%' });
    expect(checkRowCount(6_100_000, baseline, 0.2)).toMatchObject({ outcome: 'failed', detail: '6,100,000 rows vs 5,000,000 in run 41 (+22.0%), limit 20%' });
    expect(checkRowCount(4_000_000, baseline, 0.2).outcome).toBe('passed');
    expect(checkRowCount(4_000_000, undefined, 0.2)).toMatchObject({ outcome: 'passed', detail: '4,000,000 rows; no published full run to compare with' });
  });

  it('null_rate: the features over the limit, largest change first, in percentage points', () => {
    const r = checkNullRates(
      1000,
      new Map([
        ['income', 150],
        ['age', 100],
        ['other', 0],
      ]),
      baseline,
      5,
    );
    expect(r).toMatchObject({ outcome: 'failed', detail: 'income 15.0% NULL vs 2.0% in run 41 (+13.0 pp), limit 5 pp' });
    expect(checkNullRates(1000, new Map([['income', 60]]), baseline, 5)).toMatchObject({
      outcome: 'passed',
      detail: 'largest change: income 6.0% NULL vs 2.0% in run 41 (+4.0 pp), limit 5 pp',
    });
    expect(checkNullRates(1000, new Map([['income', 900]]), { ...baseline, nullFractions: new Map() }, 5)).toMatchObject({
      outcome: 'passed',
      detail: '1 features; run 41 recorded no NULL rates',
    });
  });

  it('assertions: count and at most the keys given; the error line joins every failure', () => {
    const a = checkAssertion('no_negative_income', 1, ['7']);
    expect(a).toMatchObject({ outcome: 'failed', detail: '1 offending row, keys 7' });
    expect(checkAssertion('x', 0, []).outcome).toBe('passed');
    expect(describeFailures([a, checkRowCount(3_500_000, baseline, 0.2)])).toBe(
      'input checks failed: no_negative_income: 1 offending row, keys 7; row_count: 3,500,000 rows vs 5,000,000 in run 41 (−30.0%), limit 20%',
    );
  });
});
