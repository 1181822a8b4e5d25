import { SqlState, isTransient, sqlStateOf } from '../db/sqlstate.js';
import { SnapshotLostError } from '../errors.js';

/** The outage budget when none is given (README "Configuration", `--outage-budget`). */
export const defaultOutageBudgetMs = 60_000;

/**
 * What a chunk's failure says about what to do next:
 * - `connection`: the connection went away (server restarting, network): the database may be unreachable
 *   for a while, which is not the chunk's fault: wait for it within the outage budget;
 * - `transient`: worth another attempt of the chunk (serialization failure, deadlock, a lost snapshot);
 * - `permanent`: another attempt would fail the same way (bad data, a model error, a permission).
 */
export type FailureClass = 'connection' | 'transient' | 'permanent';

export function failureClass(err: unknown): FailureClass {
  if (err instanceof SnapshotLostError) return 'transient';
  if (!isTransient(err)) return 'permanent';
  const state = sqlStateOf(err);
  // A lost serialization race, a deadlock, a full connection table: the server is up and answering.
  if (state === SqlState.serializationFailure || state === SqlState.deadlockDetected || state === SqlState.tooManyConnections) return 'transient';
  return 'connection';
}

/** What the chunk loop does after a failure. */
export type RetryDecision =
  | { action: 'fail' }
  /** Another attempt of the chunk after `waitMs` (the chunk's attempt was counted). */
  | { action: 'retry'; waitMs: number };

export interface RetryInput {
  failure: FailureClass;
  /** Whether this failure counts as one of the chunk's attempts (a wait for an unreachable database does not). */
  counted: boolean;
  /** The chunk's failed attempts so far, this one included when counted (on every worker of a shared run). */
  attempts: number;
  /** The outages waited out while this chunk was in flight, this one included when not counted. */
  outages?: number;
  /** `--chunk-attempts`. */
  maxAttempts: number;
  /** Base backoff between counted attempts, ms (doubles each time). */
  backoffMs: number;
  stopping: boolean;
}

/**
 * The chunk retry policy, pure. A permanent failure, a stop request or a chunk out of attempts fails the
 * run; otherwise the chunk is tried again, after a doubling backoff when the attempt counted, at once when
 * it did not (the loop has just waited for the database to come back). Outages do not use up attempts,
 * but more separate outages than `maxAttempts` during one chunk fail it too.
 */
export function decideRetry(r: RetryInput): RetryDecision {
  if (r.failure === 'permanent' || r.stopping) return { action: 'fail' };
  // A chunk in flight at every one of many outages may be what brings the server down (a crash it causes): bounded too.
  if (!r.counted) return (r.outages ?? 1) > r.maxAttempts ? { action: 'fail' } : { action: 'retry', waitMs: 0 };
  if (r.attempts >= r.maxAttempts) return { action: 'fail' };
  return { action: 'retry', waitMs: r.backoffMs * 2 ** Math.max(0, r.attempts - 1) };
}
