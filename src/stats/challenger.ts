import { populationStabilityIndex, psiEpsilon } from './psi.js';

/**
 * How a run's challenger scored beside it (`score_runs.stats.challenger` of the champion run, shown by
 * `runs show`), over the customers both models scored.
 */
export interface ChallengerComparison {
  /** The challenger's sibling run (publish it with `scorejob publish <champion> --challenger`). */
  run_id: string;
  model_name: string;
  model_version: string;
  /** Customers both models scored (the others were rejected by one of them). */
  customers: number;
  /** Pearson's r of the two scores; null with fewer than two customers or a constant score. */
  correlation: number | null;
  /** PSI of the challenger's scores against the champion's over the champion's deciles (its percentile cut points 10, 20, …, 90). */
  psi: number | null;
  /** |top decile by the champion ∩ top decile by the challenger| / |top decile by the champion|: each its percentiles 91–100. */
  top_decile_overlap: number | null;
  /** Customers whose band would change were the challenger published; null when the champion's manifest has no bands. */
  band_changes: number | null;
  /** Both models' drift from the run readers saw before (the --max-psi gate's baseline), side by side; absent on runs scored before it was recorded. */
  drift?: { baseline_run_id: string | null; champion_psi: number | null; challenger_psi: number | null };
}

/** The comparison from the counts one pass over both tables gives (src/ledger/challengers.ts). */
export function compareScores(
  run: { run_id: string; model_name: string; model_version: string },
  rows: { both: number; correlation: number | null; top: number; topOverlap: number; championDeciles: readonly number[]; challengerDeciles: readonly number[]; bandChanges: number | null },
): ChallengerComparison {
  return {
    ...run,
    customers: rows.both,
    correlation: rows.correlation === null || !Number.isFinite(rows.correlation) ? null : rows.correlation,
    psi: populationStabilityIndex(rows.championDeciles, rows.challengerDeciles, psiEpsilon),
    top_decile_overlap: rows.top === 0 ? null : rows.topOverlap / rows.top,
    band_changes: rows.bandChanges,
  };
}
