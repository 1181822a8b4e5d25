import type pg from 'pg';
import type { Ledger } from '../ledger/ledger.js';
import { type RunBands } from '../ledger/publications.js';
import type { ManifestBand } from '../model/manifest.js';
import { ScoreHistogram } from '../stats/scoreCuts.js';

/**
 * The run's percentile cut points from a histogram of its scores (one scan of the few scores near the
 * ranks, no sort), with the histogram (complete: every score of the run). The histogram is the one its
 * chunks filled when it counted every score of the run; for a layered --only-new run, the stored histogram
 * of the full run below it, minus the scores the layer hides, plus the layer's own; otherwise (a resume,
 * whose earlier chunks another process counted) one filled now from a stream of the run's scores, still
 * cheaper than the sort percentile_cont would do. Undefined when the run has no score.
 */
export async function cutPointsFromHistogram(opts: {
  client: pg.ClientBase;
  ledger: Ledger;
  runId: string;
  histogram: ScoreHistogram | undefined;
  /** How many scores the run has. */
  total: number;
}): Promise<{ cuts: number[]; histogram: ScoreHistogram } | undefined> {
  const { client: c, ledger, runId, histogram, total } = opts;
  if (total === 0) return undefined;
  let counted = histogram?.count === total ? histogram : await layerHistogram(c, ledger, runId);
  if (counted?.count !== total) {
    const fresh = new ScoreHistogram();
    await ledger.scores.allScores(c, runId, (bits) => fresh.addBits(bits));
    // The table moved under us (it cannot: the run holds its lock): let the SQL sort decide.
    if (fresh.count !== total) return undefined;
    counted = fresh;
  }
  const refined = counted.refinement();
  await ledger.scores.scoresInRanges(c, runId, counted.ranges().thresholds, (bits) => refined.add(bits));
  return { cuts: counted.cuts(refined), histogram: counted };
}

/** A layered run's histogram from the stored one of the run below it; undefined when there is none to start from. */
async function layerHistogram(c: pg.ClientBase, ledger: Ledger, runId: string): Promise<ScoreHistogram | undefined> {
  const layers = ledger.onlyNew;
  const layer = await layers.layerOf(c, runId);
  const stored = layer && (await layers.histogramOf(c, layer.underRunId));
  if (!layer || !stored) return undefined;
  const h = ScoreHistogram.fromSparse(stored.bins, stored.counts);
  try {
    await ledger.scores.hiddenScores(c, runId, layer.underRunId, (bits) => h.removeBits(bits));
  } catch {
    return undefined; // a stored histogram that does not hold the hidden scores: not this table's, count afresh
  }
  await ledger.scores.ownScores(c, runId, (bits) => h.addBits(bits));
  return h;
}

/** The manifest's bands as stored on the run: the bounds between them, and every name. */
export function runBands(bands: readonly ManifestBand[] | undefined): RunBands | undefined {
  if (!bands) return undefined;
  return { bounds: bands.slice(0, -1).map((b) => b.below as number), names: bands.map((b) => b.name) };
}
