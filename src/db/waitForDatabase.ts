import { isTransient } from './sqlstate.js';

export interface OutageWait {
  /** How long an outage is waited out, ms, from `since` (the outage budget, `--outage-budget`). */
  budgetMs: number;
  /** When the outage began (Date.now()); default now. */
  since?: number;
  /** Told when the wait starts (the outage's start) and when it ends (undefined): progress says "waiting for the database". */
  onWaiting?(since: number | undefined): void;
  /** Checked between probes: a stop request ends the wait with the last error. */
  stopping?(): boolean;
  /** Pause between probes, ms. */
  intervalMs?: number;
}

/**
 * Waits until the database answers `probe` again, within the outage budget. Returns how long it waited,
 * ms: 0 when the first probe succeeded (the database was reachable all along). Throws the probe's last
 * error once the budget is spent (or at once, for an error that no wait cures: the run lock taken over).
 */
export async function waitForDatabase(probe: () => Promise<void>, w: OutageWait): Promise<number> {
  const since = w.since ?? Date.now();
  const started = Date.now();
  let waiting = false;
  try {
    for (;;) {
      try {
        await probe();
        return waiting ? Date.now() - started : 0;
      } catch (err) {
        if (!isTransient(err) || Date.now() - since >= w.budgetMs || w.stopping?.()) throw err;
        if (!waiting) w.onWaiting?.(since);
        waiting = true;
      }
      const left = since + w.budgetMs - Date.now();
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(w.intervalMs ?? 500, left))));
    }
  } finally {
    if (waiting) w.onWaiting?.(undefined);
  }
}
