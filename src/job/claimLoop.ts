import { hostname } from 'node:os';
import type pg from 'pg';
import { describeDbError } from '../db/describeError.js';
import { ClaimLostError, RunFailedError, SnapshotLostError } from '../errors.js';
import type { ChunkClaim, ChunkClaims } from '../ledger/chunkClaims.js';
import { runHolderState } from '../ledger/runLock.js';
import { runChunks, type ChunkLoopDeps } from './chunkLoop.js';

/** Who a worker is, in the ledger and the logs. */
export interface WorkerId {
  host: string;
  pid: number;
}

export const thisWorker = (): WorkerId => ({ host: hostname(), pid: process.pid });

export interface ClaimLoopDeps extends Omit<ChunkLoopDeps, 'recordFailure'> {
  claims: ChunkClaims;
  schema: string;
  worker: WorkerId;
  leaseMs: number;
  /** How often a worker with nothing to claim looks again (others hold the rest), ms. */
  pollMs?: number;
  /** The coordinator keeps going while its own lock says so; a worker stops once the coordinator is gone. */
  role: 'coordinator' | 'worker';
}

/** How a claim loop ended. */
export type ClaimOutcome = 'done' | 'stopped' | 'run-ended' | 'coordinator-gone';

/**
 * Claims chunks of a shared run one at a time (src/ledger/chunkClaims.ts) and scores each with the
 * ordinary chunk loop, until no chunk is pending. A claim is held by a lease renewed on the pool every
 * third of the lease; its commit is fenced by the claim (the chunk's row locked FOR UPDATE with our token
 * on it), so a worker that stalled past its lease and was taken over rolls back instead of committing the
 * chunk twice, and says so. With nothing to claim while chunks are pending (other workers hold them), it
 * waits, to take over a chunk whose worker dies. A chunk that fails for good is marked failed: every
 * worker stops, and the coordinator fails the run.
 */
export async function runClaimed(d: ClaimLoopDeps): Promise<ClaimOutcome> {
  const pollMs = d.pollMs ?? 500;
  for (;;) {
    if (d.stop.requested) return 'stopped';
    const state = await d.claims.state(d.pool, d.runId);
    if (state.failed) {
      const f = state.failed;
      throw new RunFailedError(`chunk ${f.chunkNo} failed on pid ${f.pid} on ${f.host}: ${f.error ?? 'unknown error'}`, d.runId);
    }
    if (state.runStatus !== 'running') return 'run-ended';
    if (state.pending === 0) return 'done';
    if (d.role === 'worker') {
      const holder = await runHolderState(d.pool, d.schema, d.runId);
      if (holder === 'none') return 'coordinator-gone';
    }
    const claim = await d.claims.claim(d.pool, d.runId, d.worker, d.leaseMs);
    if (!claim) {
      await new Promise((r) => setTimeout(r, pollMs));
      continue;
    }
    if (claim.takenFrom) {
      d.log.warn({ chunk: claim.chunkNo, from_pid: claim.takenFrom.pid, from_host: claim.takenFrom.host }, `chunk ${claim.chunkNo}: took it over from pid ${claim.takenFrom.pid} on ${claim.takenFrom.host}, whose lease expired`);
    }
    const ended = await scoreClaimed(d, claim);
    if (ended) return ended;
  }
}

/** Scores one claimed chunk; returns an outcome when the loop must end, undefined to claim the next. */
async function scoreClaimed(d: ClaimLoopDeps, claim: ChunkClaim): Promise<ClaimOutcome | undefined> {
  let lost = false;
  const onLost = () => {
    if (lost) return;
    lost = true;
    d.log.warn({ chunk: claim.chunkNo, claim_lost: true }, `lost the claim on chunk ${claim.chunkNo}: its lease expired and another worker took it over; this worker's work on it is rolled back`);
  };
  // The lease is renewed on the pool, apart from the chunk's reader and writer, so a long read or write never lets it lapse.
  const renewal = setInterval(() => {
    void d.claims.renew(d.pool, d.runId, claim, d.leaseMs).then(
      (ours) => (ours ? undefined : onLost()),
      () => undefined,
    );
  }, Math.max(100, Math.floor(d.leaseMs / 3)));
  renewal.unref();
  try {
    const completed = await runChunks(
      {
        ...d,
        recordFailure: (_chunkNo, message) => d.claims.recordFailure(d.pool, d.runId, claim, message),
        // The claim first (it locks the chunk's row), then the coordinator's run lock, as the last statements before COMMIT.
        fence: async (c: pg.ClientBase) => {
          if (!(await d.claims.holds(c, d.runId, claim))) throw new ClaimLostError(claim.chunkNo);
          await d.fence?.(c);
        },
      },
      [claim],
    );
    if (!completed) {
      await d.claims.release(d.pool, d.runId, claim).catch(() => undefined);
      return 'stopped';
    }
    return undefined;
  } catch (err) {
    clearInterval(renewal);
    // Whatever the error (a duplicate key from the scores another worker committed, the fence), a claim that is not ours any more was lost.
    if (err instanceof ClaimLostError || !(await d.claims.stillHeld(d.pool, d.runId, claim).catch(() => true))) {
      onLost();
      return undefined;
    }
    if (err instanceof SnapshotLostError && d.role === 'worker') {
      // The coordinator's snapshot is gone: it died (the loop's next turn sees it) or it takes a new one.
      await d.claims.release(d.pool, d.runId, claim).catch(() => undefined);
      d.log.warn({ chunk: claim.chunkNo }, `chunk ${claim.chunkNo}: the run's snapshot is gone (${err.message}); given back`);
      await new Promise((r) => setTimeout(r, 1000));
      return undefined;
    }
    if (d.stop.requested) {
      await d.claims.release(d.pool, d.runId, claim).catch(() => undefined);
      throw err;
    }
    await d.claims.markFailed(d.pool, d.runId, claim, describeDbError(err)).catch(() => undefined);
    throw err;
  } finally {
    clearInterval(renewal);
  }
}
