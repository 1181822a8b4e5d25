import { describe, expect, it } from 'vitest';
import { psiGateBreach, rejectGateBreach } from '../../../src/stats/runStats.js';

/** README "Publish gates": the reject and PSI gates at their edges (no rows, the ratio where the message gains a decimal, a PSI without a reason). */
describe('the reject gate at its edges', () => {
  it('a run with no rows at all passes, whatever the limit (0 of 0 is no reject ratio, not NaN)', () => {
    expect(rejectGateBreach(0, 0, 0)).toBeUndefined();
    expect(rejectGateBreach(0, 0, 0.01)).toBeUndefined();
  });

  it('one rejected row over a zero limit fails, and so does a run of rejects only', () => {
    expect(rejectGateBreach(999, 1, 0)).toBe('rejected 0.10% of rows (1 of 1000), over the limit of 0.000% (--max-reject-ratio)');
    expect(rejectGateBreach(0, 3, 0.5)).toBe('rejected 100.00% of rows (3 of 3), over the limit of 50.00% (--max-reject-ratio)');
  });

  it('a ratio of exactly 0.1% reads with two decimals; just under it, with three so that it does not read as 0.00%', () => {
    // 2 of 1000 over a limit of 1 in 1000: the limit is exactly 0.001.
    expect(rejectGateBreach(998, 2, 0.001)).toBe('rejected 0.20% of rows (2 of 1000), over the limit of 0.10% (--max-reject-ratio)');
    expect(rejectGateBreach(9991, 9, 0.0005)).toBe('rejected 0.090% of rows (9 of 10000), over the limit of 0.050% (--max-reject-ratio)');
  });
});

describe('the PSI gate at its edges', () => {
  it('a PSI that cannot be computed, with no reason recorded, still fails and says so', () => {
    const d = { psi: null, baseline_run_id: '7', bins: 10, epsilon: 1e-4 };
    expect(psiGateBreach(d, 0.2)).toBe(
      "the PSI of the scores against run 7's cannot be computed (the histograms cannot be compared), so the scores cannot pass the limit of 0.2 (--max-psi)",
    );
  });

  it('a null limit (no --max-psi) passes even a PSI that cannot be computed', () => {
    expect(psiGateBreach({ psi: null, baseline_run_id: '7', bins: 10, epsilon: 1e-4 }, null)).toBeUndefined();
    expect(psiGateBreach({ psi: 5, baseline_run_id: '7', bins: 10, epsilon: 1e-4 }, null)).toBeUndefined();
  });

  it('a PSI of 0 passes a limit of 0; the smallest PSI over it fails', () => {
    expect(psiGateBreach({ psi: 0, baseline_run_id: '7', bins: 10, epsilon: 1e-4 }, 0)).toBeUndefined();
    expect(psiGateBreach({ psi: 1e-9, baseline_run_id: '7', bins: 10, epsilon: 1e-4 }, 0)).toBe(
      "the scores drifted from run 7's: PSI 0.0000, over the limit of 0 (--max-psi)",
    );
  });
});
