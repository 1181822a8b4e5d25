import type { ChallengerComparison } from './challengerTypes.js';
import { populationStabilityIndex, psiEpsilon } from '../../stats/psi.js';

export type { ChallengerComparison };

/** The comparison from the counts one pass over both tables gives (challengerLedger.ts). */
export function compareScores(
  run: { run_id: string; model_name: string; model_version: string },
  rows: {
    both: number;
    correlation: number | null;
    top: number;
    topOverlap: number;
    championDeciles: readonly number[];
    challengerDeciles: readonly number[];
    bandChanges: number | null;
  },
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

/**
 * How far a challenger may differ from its champion, over the customers both scored, and still be published
 * without `--force` (`scorejob publish <run> --challenger`): flags `--min-correlation`,
 * `--min-top-decile-overlap`, `--max-psi-vs-champion`.
 */
export interface ComparisonLimits {
  /** Pearson's r of the two scores at least this. */
  minCorrelation: number;
  /** At least this share of the champion's top decile in the challenger's top decile. */
  minTopDecileOverlap: number;
  /** The challenger's scores' PSI over the champion's deciles at most this (0.25: the usual "major shift"). */
  maxPsi: number;
}

/**
 * A reviewer's defaults: a challenger that ranks customers unlike the champion (r < 0.5, fewer than 3 in 10
 * of the champion's top decile kept) or whose scores moved across the champion's deciles by a "major shift"
 * (PSI > 0.25) is a different model, not a better version of it: someone must say why it replaces it.
 */
export const defaultComparisonLimits: Readonly<ComparisonLimits> = Object.freeze({ minCorrelation: 0.5, minTopDecileOverlap: 0.3, maxPsi: 0.25 });

/**
 * Every way the challenger breaches the limits, in one phrase, or undefined when it passes. A figure that
 * could not be computed (a constant score, nobody in both) breaches: it cannot show the challenger is close.
 */
export function comparisonGateBreach(c: ChallengerComparison | undefined, limits: ComparisonLimits): string | undefined {
  if (c === undefined) return 'has no comparison with the champion recorded (the run did not compute one)';
  const breaches: string[] = [];
  const r = c.correlation;
  if (r === null || r < limits.minCorrelation)
    breaches.push(`correlation ${r === null ? 'undefined (a constant score)' : r.toFixed(2)}, under ${limits.minCorrelation} (--min-correlation)`);
  const o = c.top_decile_overlap;
  if (o === null || o < limits.minTopDecileOverlap) {
    breaches.push(
      `top-decile overlap ${o === null ? 'undefined' : `${(o * 100).toFixed(1)}%`}, under ${(limits.minTopDecileOverlap * 100).toFixed(0)}% (--min-top-decile-overlap)`,
    );
  }
  if (c.psi === null || c.psi > limits.maxPsi)
    breaches.push(`PSI against the champion ${c.psi === null ? 'undefined' : c.psi.toFixed(2)}, over ${limits.maxPsi} (--max-psi-vs-champion)`);
  if (breaches.length === 0) return undefined;
  return `differs from the champion over the ${c.customers} customers both scored: ${breaches.join(', ')}`;
}
