import { hostname } from 'node:os';
import type pg from 'pg';
import { describeDbError } from '../db/describeError.js';
import { ClaimLostError, RunFailedError, SnapshotLostError } from '../errors.js';
import type { ChunkClaim, ChunkClaims } from '../ledger/chunkClaims.js';
import { runHolderState } from '../ledger/runLock.js';
import type { ChunkLoopDeps } from './chunkLoop.js';
import { runChunks } from './chunkRunner.js';
import type { Stage } from '../observe/timings.js';

/** The stages a chunk costs (planning and publishing are the coordinator's). */
export const chunkStages: readonly Stage[] = ['read', 'transform', 'predict', 'write'];

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
 * Claims chunks of a shared run (src/ledger/chunkClaims.ts) and scores them with the ordinary chunk loop,
 * which claims the next chunk as it reads ahead (so a worker overlaps reading and scoring as a run of its
 * own does), until no chunk is pending. Each claim is held by a lease renewed on the pool every third of
 * the lease; its commit is fenced by the claim (the chunk's row locked FOR UPDATE with our token on it), so
 * a worker that stalled past its lease and was taken over rolls back instead of committing the chunk twice,
 * and says so. With nothing to claim while chunks are pending (other workers hold them), it waits, to take
 * over a chunk whose worker dies. A chunk that fails for good is marked failed: every worker stops, and
 * the coordinator fails the run.
 */
export async function runClaimed(d: ClaimLoopDeps): Promise<ClaimOutcome> {
  const pollMs = d.pollMs ?? 500;
  /** The claims this worker holds: the chunk in flight and the one read ahead. */
  const held = new Map<number, ChunkClaim>();
  const lostSaid = new Set<string>();
  const onLost = (chunkNo: number, token: string | undefined) => {
    if (token !== undefined && lostSaid.has(token)) return;
    if (token !== undefined) lostSaid.add(token);
    d.log.warn({ chunk: chunkNo, claim_lost: true }, `lost the claim on chunk ${chunkNo}: its lease expired and another worker took it over; this worker's work on it is rolled back`);
  };
  const releaseAll = async () => {
    for (const c of held.values()) await d.claims.release(d.pool, d.runId, c).catch(() => undefined);
    held.clear();
  };
  // Renewed on the pool, apart from the chunk's reader and writer, so a long read or write never lets a lease lapse.
  // One renewal per claim at a time: a chunk whose commit waits (on a lock) holds its row, and its renewal
  // waits behind it; renewals piling up there would take every connection of the pool.
  const renewing = new Set<string>();
  const renewal = setInterval(() => {
    for (const c of held.values()) {
      if (renewing.has(c.token)) continue;
      renewing.add(c.token);
      void d.claims
        .renew(d.pool, d.runId, c, d.leaseMs)
        .then((ours) => (ours ? undefined : onLost(c.chunkNo, c.token)), () => undefined)
        .finally(() => renewing.delete(c.token));
    }
  }, Math.max(100, Math.floor(d.leaseMs / 3)));
  renewal.unref();
  let last = d.timings.toJSON();
  const stageDelta = (): Partial<Record<Stage, number>> => {
    const now = d.timings.toJSON();
    const delta = Object.fromEntries(chunkStages.map((k) => [k, Math.round((now[k] - last[k]) * 10) / 10]));
    last = now;
    return delta;
  };
  try {
    for (;;) {
      if (d.stop.requested) return 'stopped';
      const ended = await checkRun(d);
      if (ended) return ended;
      let claimed = 0;
      let failedChunk: number | undefined;
      const more = async (): Promise<ChunkClaim | undefined> => {
        if (d.stop.requested) return undefined;
        const claim = await d.claims.claim(d.pool, d.runId, d.worker, d.leaseMs);
        if (!claim) return undefined;
        if (claim.takenFrom) {
          d.log.warn({ chunk: claim.chunkNo, from_pid: claim.takenFrom.pid, from_host: claim.takenFrom.host, attempts: claim.attempts }, `chunk ${claim.chunkNo}: took it over from pid ${claim.takenFrom.pid} on ${claim.takenFrom.host}, whose lease expired`);
        }
        if (claim.attempts >= d.attempts) {
          // Its attempts are used up across workers (the one it was taken from died trying): it fails the run
          // here, and the next look at the run (checkRun) stops every worker. No more claims meanwhile.
          await d.claims.giveUp(d.pool, d.runId, claim, d.attempts);
          d.log.error({ chunk: claim.chunkNo, attempts: claim.attempts }, `chunk ${claim.chunkNo} has had ${claim.attempts} attempt${claim.attempts === 1 ? '' : 's'} across workers (--chunk-attempts ${d.attempts}): it fails the run`);
          await d.claims.release(d.pool, d.runId, claim);
          return undefined;
        }
        held.set(claim.chunkNo, claim);
        claimed++;
        return claim;
      };
      try {
        const completed = await runChunks(
          {
            ...d,
            more,
            recordFailure: async (chunkNo, message) => {
              failedChunk = chunkNo;
              const claim = held.get(chunkNo);
              if (claim) await d.claims.recordFailure(d.pool, d.runId, claim, message);
            },
            // The claim first (it locks the chunk's row), then the coordinator's run lock: the last statements before COMMIT.
            fence: async (c: pg.ClientBase, chunkNo: number) => {
              const claim = held.get(chunkNo);
              if (!claim || !(await d.claims.holds(c, d.runId, claim))) throw new ClaimLostError(chunkNo);
              await d.fence?.(c, chunkNo);
            },
            // A chunk's attempts count on every worker: a chunk taken over starts with those before it.
            attemptsBefore: (chunkNo: number) => held.get(chunkNo)?.attempts ?? 0,
            // Each chunk carries the stage times it cost this worker, so the coordinator can add up the whole run's (sharedRun.ts).
            chunkStats: () => ({ ...d.chunkStats?.(), timings_ms: stageDelta() }),
            onChunkDone: (info) => {
              held.delete(info.chunkNo);
              d.onChunkDone?.(info);
            },
          },
          [],
        );
        await releaseAll();
        if (!completed) return 'stopped';
        if (claimed === 0) await new Promise((r) => setTimeout(r, pollMs));
      } catch (err) {
        const chunkNo = err instanceof ClaimLostError ? err.chunkNo : failedChunk;
        const claim = chunkNo === undefined ? undefined : held.get(chunkNo);
        // Whatever the error (the fence, a duplicate key from the scores the other worker committed), a claim that is not ours any more was lost.
        if (chunkNo !== undefined && (err instanceof ClaimLostError || (claim && !(await d.claims.stillHeld(d.pool, d.runId, claim).catch(() => true))))) {
          onLost(chunkNo, claim?.token);
          held.delete(chunkNo);
          await releaseAll();
          continue;
        }
        if (err instanceof SnapshotLostError && d.role === 'worker') {
          // The coordinator's snapshot is gone: it died (the next turn sees it) or it takes a new one.
          await releaseAll();
          d.log.warn({ chunk: chunkNo }, `the run's snapshot is gone (${err.message}); claims given back`);
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        if (d.stop.requested && !(err instanceof RunFailedError)) {
          // Stopped by a signal while a chunk was failing: it is not failed for good, only not done; another
          // worker (or the resume) tries it again.
          await releaseAll();
          d.log.warn({ chunk: chunkNo, error: describeDbError(err) }, `chunk ${chunkNo ?? '?'} failed (${describeDbError(err)}) while stopping; given back, not marked failed`);
          return 'stopped';
        }
        // The run ended meanwhile (its coordinator was stopped and marked it interrupted): the chunk's commit
        // was refused and rolled back, and a resume redoes it; nothing failed here.
        const now = d.role === 'worker' ? await d.claims.state(d.pool, d.runId).catch(() => undefined) : undefined;
        if (now !== undefined && now.runStatus !== 'running') {
          await releaseAll();
          d.log.info({ chunk: chunkNo }, `run ${d.runId} is not running any more; chunk ${chunkNo ?? '?'} rolled back, for a resume to redo`);
          return 'run-ended';
        }
        if (claim && !d.stop.requested) await d.claims.markFailed(d.pool, d.runId, claim, describeDbError(err)).catch(() => undefined);
        if (claim) held.delete(claim.chunkNo);
        await releaseAll();
        throw err;
      }
    }
  } finally {
    clearInterval(renewal);
    await releaseAll();
  }
}

/** Whether the loop must end: a chunk failed for good (throws), the run is over or done, or (a worker) its coordinator is gone. */
async function checkRun(d: ClaimLoopDeps): Promise<ClaimOutcome | undefined> {
  const state = await d.claims.state(d.pool, d.runId);
  if (state.failed) {
    const f = state.failed;
    throw new RunFailedError(`chunk ${f.chunkNo} failed on pid ${f.pid} on ${f.host}: ${f.error ?? 'unknown error'}`, d.runId);
  }
  if (state.runStatus !== 'running') return 'run-ended';
  if (state.pending === 0) return 'done';
  if (d.role === 'worker' && (await runHolderState(d.pool, d.schema, d.runId)) === 'none') return 'coordinator-gone';
  return undefined;
}
