import type pg from 'pg';
import type { Ledger, RunRow } from '../ledger/ledger.js';
import type { FewerReasons } from '../ledger/publications.js';

/** What readers of customer_score_reasons lose when a publication replaces a run that had reasons with one that has none. */
export interface ReasonsLost {
  /** The run readers saw before, scored with `--reasons K`. */
  fromRunId: string;
  k: number;
}

/**
 * Whether the publication of `run` (replacing `previousRunId`) empties the model's customer_score_reasons:
 * the run it replaced was scored with `--reasons K` and this one was not (a sibling run never has reasons).
 */
export async function reasonsLost(
  c: pg.ClientBase,
  ledger: Ledger,
  previousRunId: string | null,
  run: Pick<RunRow, 'params'>,
): Promise<ReasonsLost | undefined> {
  if (previousRunId === null || run.params.reasons) return undefined;
  const previous = await ledger.getRun(c, previousRunId);
  const k = previous?.params.reasons?.k;
  return k === undefined ? undefined : { fromRunId: previousRunId, k };
}

/** The words for a publication that left fewer customers with reasons (a run, a rollback). */
export function describeFewerReasons(schema: string, runId: string, f: FewerReasons): string {
  return `${schema}.customer_score_reasons has reasons for ${f.now} customers of run ${runId} now, ${f.before - f.now} fewer than with run ${f.fromRunId} before it (published_runs.fewer_reasons); score with --reasons to keep them`;
}

/** The publish line's words for it. */
export function describeReasonsLost(schema: string, lost: ReasonsLost): string {
  return `; ${schema}.customer_score_reasons is empty for this model now: run ${lost.fromRunId}, which it replaces, had each customer's ${lost.k} reasons, this one has none (publish a run scored with --reasons ${lost.k} to bring them back)`;
}
