import { describe, expect, it } from 'vitest';
import type { Drift } from '../../../src/stats/psi.js';
import { runGateRefusal, type RunGateInput } from '../../../src/stats/runStats.js';

const noBaseline: Drift = { psi: null, baseline_run_id: null, bins: 10, epsilon: 1e-4 };
const drifted: Drift = { psi: 0.5, baseline_run_id: '4', bins: 10, epsilon: 1e-4 };
const run = (g: Partial<RunGateInput>): RunGateInput => ({
  scored: 100,
  rejected: 0,
  drift: noBaseline,
  maxRejectRatio: 0.01,
  maxPsi: undefined,
  schema: 'scoring',
  runId: '7',
  ...g,
});

describe("a run's publish gates", () => {
  it('let a run within its limits publish, and a PSI limit without a previous published run does not apply', () => {
    expect(runGateRefusal(run({}))).toBeUndefined();
    expect(runGateRefusal(run({ maxPsi: 0.1 }))).toBeUndefined();
  });

  it('refuse too many rejects first, pointing at the run in score_rejects', () => {
    expect(runGateRefusal(run({ scored: 90, rejected: 10, drift: drifted, maxPsi: 0.1 }))).toBe(
      'rejected 10.00% of rows (10 of 100), over the limit of 1.00% (--max-reject-ratio); the scores are kept unpublished: see scoring.score_rejects for run 7',
    );
  });

  it('then drift over --max-psi, naming the run to inspect', () => {
    expect(runGateRefusal(run({ drift: drifted, maxPsi: 0.1 }))).toBe(
      "the scores drifted from run 4's: PSI 0.5000, over the limit of 0.1 (--max-psi); the scores are kept unpublished for inspection (`scorejob runs show 7`)",
    );
  });

  it('refuse a run that scored no customer whatever --max-reject-ratio allows', () => {
    expect(runGateRefusal(run({ scored: 0, rejected: 3, maxRejectRatio: 1 }))).toBe(
      'no customer could be scored (3 rejected: see scoring.score_rejects for run 7); publishing would empty customer_scores',
    );
  });
});
