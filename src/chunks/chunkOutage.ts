import { connectAs } from '../db/pool.js';
import { waitForDatabase } from '../db/waitForDatabase.js';
import { OutageError } from '../errors.js';
import type { PlannedChunk } from '../ledger/ledger.js';
import type { ChunkLoopDeps } from './chunkLoop.js';
import { defaultOutageBudgetMs, failureClass } from './retryPolicy.js';

/** After a connection failure of `chunk`: waits for the database within the outage budget; returns ms waited (0: it answered at once); throws an OutageError past the budget. */
export async function waitForChunkDatabase(d: ChunkLoopDeps, chunk: PlannedChunk, message: string): Promise<number> {
  const budgetMs = d.outageBudgetMs ?? defaultOutageBudgetMs;
  // A connection of its own, closed at once: it must not linger in the pool as one of the loop's.
  const probe = async (): Promise<void> => {
    await d.recover();
    (await connectAs(d.pool, 'probe')).release(true);
  };
  const onWaiting = (since: number | undefined): void => {
    if (since !== undefined)
      d.log.warn(
        { chunk: chunk.chunkNo, error: message, outage_budget_s: budgetMs / 1000 },
        `the database is unreachable (${message}); waiting for it (chunk ${chunk.chunkNo})`,
      );
    else d.log.info({ chunk: chunk.chunkNo }, 'the database is back');
    d.onWaiting?.(since);
  };
  return waitForDatabase(probe, { budgetMs, onWaiting, stopping: () => d.stop.requested !== undefined }).catch((e: unknown) => {
    d.onFailed?.(chunk);
    // A stop request ends the wait too: that is an interruption, not an outage past its budget.
    throw failureClass(e) === 'connection' && !d.stop.requested ? new OutageError(budgetMs / 1000, e) : e;
  });
}
