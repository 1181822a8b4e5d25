import { describe, expect, it } from 'vitest';
import { comparisonGateBreach, defaultComparisonLimits, type ChallengerComparison } from '../../../src/features/challenger/comparison.js';

const close: ChallengerComparison = {
  run_id: '43',
  model_name: 'm',
  model_version: '2',
  customers: 1000,
  correlation: 0.93,
  psi: 0.04,
  top_decile_overlap: 0.71,
  band_changes: null,
};

describe('the comparison gate of publish --challenger', () => {
  it('passes a challenger within every default limit, at the limits included', () => {
    expect(comparisonGateBreach(close, defaultComparisonLimits)).toBeUndefined();
    expect(comparisonGateBreach({ ...close, correlation: 0.5, top_decile_overlap: 0.3, psi: 0.25 }, defaultComparisonLimits)).toBeUndefined();
  });

  it('names every figure over its limit, with its flag', () => {
    const far = { ...close, correlation: 0.05, top_decile_overlap: 0.018, psi: 4.31 };
    expect(comparisonGateBreach(far, defaultComparisonLimits)).toBe(
      'differs from the champion over the 1000 customers both scored: correlation 0.05, under 0.5 (--min-correlation), ' +
        'top-decile overlap 1.8%, under 30% (--min-top-decile-overlap), PSI against the champion 4.31, over 0.25 (--max-psi-vs-champion)',
    );
    expect(comparisonGateBreach(far, { minCorrelation: -1, minTopDecileOverlap: 0, maxPsi: 5 })).toBeUndefined();
  });

  it('fails a figure that could not be computed, and a run without a comparison', () => {
    expect(comparisonGateBreach({ ...close, correlation: null }, defaultComparisonLimits)).toMatch(/correlation undefined \(a constant score\), under 0\.5/);
    expect(comparisonGateBreach(undefined, defaultComparisonLimits)).toMatch(/has no comparison with the champion recorded/);
  });
});
