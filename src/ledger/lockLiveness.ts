/*
 * When the holder of a run_locks row counts as alive: shared by the lock itself (runLock.ts) and by the
 * ledger, which marks the runs of dead holders interrupted.
 */

/**
 * How the run lock stays alive. The holder renews its lease every `beatMs` on a connection of its own.
 * The lock is free once the lease ran out (a hung process: its backend lives, nothing renews), or once
 * the holder's backend is gone and its last heartbeat is older than `graceMs` (a killed process; a live
 * one whose connection dropped reconnects and re-registers well within the grace).
 */
export interface LockTiming {
  beatMs: number;
  leaseMs: number;
  graceMs: number;
}

export const lockTiming: LockTiming = Object.freeze({ beatMs: 2_000, leaseMs: 30_000, graceMs: 6_000 });

/**
 * SQL: whether the holder recorded in run_locks row `l` is alive (see {@link LockTiming}). `grace` is a
 * parameter in ms. A backend counts as the holder's only if its start time matches (pids are reused);
 * a role that may not see another role's backend_start sees NULL there and trusts the pid.
 */
export function holderAliveSql(l: string, grace: string): string {
  return `(${l}.token IS NOT NULL AND ${l}.lease_until > now() AND (${l}.heartbeat_at > now() - ${grace}::int * interval '1 millisecond' OR ${backendAliveSql(l)}))`;
}

/** SQL: whether the backend recorded in run_locks row `l` still runs (same pid and start time). */
export function backendAliveSql(l: string): string {
  return `EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = ${l}.backend_pid AND (a.backend_start IS NULL OR a.backend_start = ${l}.backend_start))`;
}
