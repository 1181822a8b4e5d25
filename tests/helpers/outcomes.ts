import type { TestDatabase } from './db.js';
import { modelCopy } from './run.js';

export const threeBands = [{ name: 'low', below: 0.2 }, { name: 'mid', below: 0.5 }, { name: 'high' }];

/**
 * The shipped model with an `outcomes` section (the shipped manifest has none: its sha256 is part of every
 * run) and score bands, for runs and syncs alike.
 */
export function modelWithOutcomes(
  outcomes: Record<string, unknown> = { table: 'customer_outcomes', horizon: '90 days' },
  bands: unknown = threeBands,
): Promise<string> {
  return modelCopy((m) => {
    m.outcomes = outcomes;
    if (bands !== undefined) m.output.bands = bands;
  });
}

/** When run `runId` was published. */
export async function publishedAt(t: TestDatabase, runId: string): Promise<Date> {
  const { rows } = await t.pool.query<{ published_at: Date }>('SELECT published_at FROM scoring.score_runs WHERE run_id = $1', [runId]);
  return rows[0]!.published_at;
}

export const day = 86_400_000;
