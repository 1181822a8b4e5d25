import type pg from 'pg';
import type { Ledger } from '../ledger/ledger.js';
import { Publications, type RunBands } from '../ledger/publications.js';
import type { ManifestBand } from '../model/manifest.js';
import { ScoreHistogram } from '../stats/scoreCuts.js';

/**
 * The run's percentile cut points from a histogram of its scores (one scan of the few scores near the
 * ranks, no sort): the one its chunks filled when it counted every score of the run; otherwise (a resume,
 * whose earlier chunks another process counted, or an --only-new run, whose carried scores no chunk read)
 * one filled now from a stream of the run's scores, still cheaper than the sort percentile_cont would do.
 */
export async function cutPointsFromHistogram(c: pg.ClientBase, ledger: Ledger, runId: string, histogram: ScoreHistogram | undefined, total: number): Promise<number[] | undefined> {
  if (total === 0) return undefined;
  const publications = new Publications(ledger);
  let counted = histogram;
  if (!counted || counted.count !== total) {
    const fresh = new ScoreHistogram();
    await publications.allScores(c, runId, (bits) => fresh.addBits(bits));
    // The table moved under us (it cannot: the run holds its lock): let the SQL sort decide.
    if (fresh.count !== total) return undefined;
    counted = fresh;
  }
  const refined = counted.refinement();
  await publications.scoresInRanges(c, runId, counted.ranges().thresholds, (bits) => refined.add(bits));
  return counted.cuts(refined);
}

/** The manifest's bands as stored on the run: the bounds between them, and every name. */
export function runBands(bands: readonly ManifestBand[] | undefined): RunBands | undefined {
  if (!bands) return undefined;
  return { bounds: bands.slice(0, -1).map((b) => b.below as number), names: bands.map((b) => b.name) };
}
