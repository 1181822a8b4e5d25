import type pg from 'pg';

/** Polls `fn` until it gives a value (not undefined or false); throws naming `what` after the timeout. */
export async function waitUntil<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Resolves once one of the job's sessions (`scorejob ledger|reader|writer`, named by the job itself) in
 * this database waits on a heavyweight lock: the known point where a test that holds that lock
 * has stopped the job.
 */
export function jobWaitsOnLock(pool: pg.Pool, roles: readonly string[] = ['ledger', 'reader', 'writer'], timeoutMs = 60_000): Promise<true> {
  const names = roles.map((r) => `scorejob ${r}`);
  return waitUntil(
    `a scorejob ${roles.join('/')} session waits on a lock`,
    async () =>
      (
        await pool.query<{ n: number }>(
          `SELECT count(*)::int n FROM pg_stat_activity WHERE datname = current_database() AND application_name = ANY($1) AND wait_event_type = 'Lock'`,
          [names],
        )
      ).rows[0]!.n > 0,
    timeoutMs,
  );
}
