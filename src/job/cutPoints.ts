import type pg from 'pg';
import type { Ledger } from '../ledger/ledger.js';
import { Publications, type RunBands } from '../ledger/publications.js';
import type { ManifestBand } from '../model/manifest.js';
import type { ScoreHistogram } from '../stats/scoreCuts.js';

/**
 * The run's percentile cut points from the histogram its chunks filled, when it counted every score of
 * the run (one scan of the few scores near the ranks, no sort); undefined when it did not (a resume: the
 * earlier chunks' scores were counted by another process), and the SQL sorts the run's table instead.
 */
export async function cutPointsFromHistogram(c: pg.ClientBase, ledger: Ledger, runId: string, histogram: ScoreHistogram | undefined, scored: number): Promise<number[] | undefined> {
  if (!histogram || histogram.count !== scored || scored === 0) return undefined;
  const refined = histogram.refinement();
  await new Publications(ledger).scoresInRanges(c, runId, histogram.ranges().thresholds, (bits) => refined.add(bits));
  return histogram.cuts(refined);
}

/** The manifest's bands as stored on the run: the bounds between them, and every name. */
export function runBands(bands: readonly ManifestBand[] | undefined): RunBands | undefined {
  if (!bands) return undefined;
  return { bounds: bands.slice(0, -1).map((b) => b.below as number), names: bands.map((b) => b.name) };
}
