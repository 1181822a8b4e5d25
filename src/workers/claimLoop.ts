import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { describeDbError } from '../db/describeError.js';
import { SqlState, sqlStateOf } from '../db/sqlstate.js';
import { ClaimLostError, RunFailedError, SnapshotLostError } from '../errors.js';
import type { ChunkClaim, ChunkClaims } from '../ledger/chunkClaims.js';
import { runHolderState } from '../ledger/runLock.js';
import type { ChunkLoopDeps } from '../chunks/chunkLoop.js';
import { HeldClaims } from './heldClaims.js';
import { runChunks } from '../chunks/chunkRunner.js';
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
  const held = new HeldClaims(d);
  const stageDelta = stageTimer(d);
  try {
    for (;;) {
      if (d.stop.requested) return 'stopped';
      const ended = await checkRun(d);
      if (ended) return ended;
      const turn: Turn = { claimed: 0, failedChunk: undefined };
      try {
        const completed = await runChunks(claimedChunkDeps(d, held, turn, stageDelta), []);
        await held.releaseAll();
        if (!completed) return 'stopped';
        if (turn.claimed === 0) await sleep(pollMs);
      } catch (err) {
        const outcome = await afterTurnFailed(d, held, err, turn.failedChunk);
        if (outcome !== 'again') return outcome;
      }
    }
  } finally {
    held.stop();
    await held.releaseAll();
  }
}

/** One pass of the chunk loop over the chunks this worker claims: how many it claimed, which one failed. */
interface Turn {
  claimed: number;
  failedChunk: number | undefined;
}

/** The stage times spent since the last call: each chunk carries what it cost this worker. */
function stageTimer(d: ClaimLoopDeps): () => Partial<Record<Stage, number>> {
  let last = d.timings.toJSON();
  return () => {
    const now = d.timings.toJSON();
    const delta = Object.fromEntries(chunkStages.map((k) => [k, Math.round((now[k] - last[k]) * 10) / 10]));
    last = now;
    return delta;
  };
}

/** The chunk loop's dependencies for a worker: chunks come from claims, commits are fenced by them. */
function claimedChunkDeps(d: ClaimLoopDeps, held: HeldClaims, turn: Turn, stageDelta: () => Partial<Record<Stage, number>>): ChunkLoopDeps {
  return {
    ...d,
    more: () => claimNext(d, held, turn),
    // Known before the failure is recorded: recording it needs a connection that may be gone, and
    // afterTurnFailed must still ask whether the failed chunk's claim was ours.
    onFailed: (chunk) => {
      turn.failedChunk = chunk.chunkNo;
      d.onFailed?.(chunk);
    },
    recordFailure: async (chunkNo, message) => {
      turn.failedChunk = chunkNo;
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
  };
}

/** Claims the next pending chunk, if any; a chunk whose attempts are used up across workers is given up instead. */
async function claimNext(d: ClaimLoopDeps, held: HeldClaims, turn: Turn): Promise<ChunkClaim | undefined> {
  if (d.stop.requested) return undefined;
  const claim = await d.claims.claim(d.pool, d.runId, d.worker, d.leaseMs);
  if (!claim) return undefined;
  if (claim.takenFrom) {
    d.log.warn(
      { chunk: claim.chunkNo, from_pid: claim.takenFrom.pid, from_host: claim.takenFrom.host, attempts: claim.attempts },
      `chunk ${claim.chunkNo}: took it over from pid ${claim.takenFrom.pid} on ${claim.takenFrom.host}, whose lease expired`,
    );
  }
  if (claim.attempts >= d.attempts) {
    // Its attempts are used up across workers (the one it was taken from died trying): it fails the run
    // here, and the next look at the run (checkRun) stops every worker. No more claims meanwhile.
    await d.claims.giveUp(d.pool, d.runId, claim, d.attempts);
    d.log.error(
      { chunk: claim.chunkNo, attempts: claim.attempts },
      `chunk ${claim.chunkNo} has had ${claim.attempts} attempt${claim.attempts === 1 ? '' : 's'} across workers (--chunk-attempts ${d.attempts}): it fails the run`,
    );
    await d.claims.release(d.pool, d.runId, claim);
    return undefined;
  }
  held.set(claim.chunkNo, claim);
  turn.claimed++;
  return claim;
}

/**
 * After the chunk loop threw: `again` to claim on (the claim was lost, or the run's snapshot is being
 * taken again), how the loop ends (stopped, run ended), or throws (the chunk failed for good: marked failed).
 */
async function afterTurnFailed(d: ClaimLoopDeps, held: HeldClaims, err: unknown, failedChunk: number | undefined): Promise<ClaimOutcome | 'again'> {
  const chunkNo = err instanceof ClaimLostError ? err.chunkNo : failedChunk;
  const claim = chunkNo === undefined ? undefined : held.get(chunkNo);
  // Whatever the error (the fence, a duplicate key from the scores the other worker committed), a claim that is not ours any more was lost.
  const duplicate = sqlStateOf(err) === SqlState.uniqueViolation;
  const lost = err instanceof ClaimLostError || (claim ? !(await d.claims.stillHeld(d.pool, d.runId, claim).catch(() => true)) : duplicate);
  if (chunkNo !== undefined && lost) {
    held.sayLost(chunkNo, claim?.token);
    held.delete(chunkNo);
    await held.releaseAll();
    return 'again';
  }
  if (err instanceof SnapshotLostError && d.role === 'worker') {
    // The coordinator's snapshot is gone: it died (the next turn sees it) or it takes a new one.
    await held.releaseAll();
    d.log.warn({ chunk: chunkNo }, `the run's snapshot is gone (${err.message}); claims given back`);
    await sleep(1000);
    return 'again';
  }
  if (d.stop.requested && !(err instanceof RunFailedError)) {
    // Stopped by a signal while a chunk was failing: it is not failed for good, only not done; another
    // worker (or the resume) tries it again.
    await held.releaseAll();
    d.log.warn(
      { chunk: chunkNo, error: describeDbError(err) },
      `chunk ${chunkNo ?? '?'} failed (${describeDbError(err)}) while stopping; given back, not marked failed`,
    );
    return 'stopped';
  }
  // The run ended meanwhile (its coordinator was stopped and marked it interrupted): the chunk's commit
  // was refused and rolled back, and a resume redoes it; nothing failed here.
  const now = d.role === 'worker' ? await d.claims.state(d.pool, d.runId).catch(() => undefined) : undefined;
  if (now !== undefined && now.runStatus !== 'running') {
    await held.releaseAll();
    d.log.info({ chunk: chunkNo }, `run ${d.runId} is not running any more; chunk ${chunkNo ?? '?'} rolled back, for a resume to redo`);
    return 'run-ended';
  }
  if (claim && !d.stop.requested) await d.claims.markFailed(d.pool, d.runId, claim, describeDbError(err)).catch(() => undefined);
  if (claim) held.delete(claim.chunkNo);
  await held.releaseAll();
  throw err;
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
