import type pg from 'pg';
import type { ChunkRow, Ledger } from '../ledger/ledger.js';
import type { FeaturePlan } from '../model/features.js';
import { chunkFeatureCounts, mergeFeatureCounts, summarizeFeatures, type FeatureCounts } from '../stats/featureStats.js';
import { drift } from '../stats/psi.js';
import type { RunStatistics } from '../stats/runStats.js';
import { mergeStats, summarize, type ScoreStats } from '../stats/scoreStats.js';

/**
 * Merges every chunk's statistics (all chunks, also those a failed attempt of the run committed
 * before a resume) and compares the scores with the previous published run. No pass over the scores.
 */
export async function computeRunStatistics(opts: {
  client: pg.ClientBase;
  ledger: Ledger;
  runId: string;
  plan: FeaturePlan;
  chunks: readonly ChunkRow[];
}): Promise<RunStatistics> {
  const { client: c, ledger, runId, plan, chunks } = opts;
  const scores = summarize(mergeStats(chunks.map((ch) => ch.stats).filter((s): s is ScoreStats => s !== null)));
  const counts = chunks.map((ch) => chunkFeatureCounts(ch.stats));
  const complete = counts.every((x): x is FeatureCounts => x !== undefined);
  const merged = complete ? mergeFeatureCounts(counts) : undefined;
  const previous = await ledger.previousPublishedRun(c, runId);
  return {
    scores,
    features: merged ? summarizeFeatures(plan, merged) : null,
    drift: drift(previous?.run_id ?? null, previous?.stats?.scores?.histogram, scores.histogram),
  };
}
