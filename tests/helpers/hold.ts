import type pg from 'pg';
import { expect } from 'vitest';
import { startCli, waitForLog } from './cli.js';
import type { TestDatabase } from './db.js';

// One polling helper for the tests (tests/helpers/waitUntil.ts); re-exported for the files that import it from here.
import { waitUntil } from './waitUntil.js';
export { waitUntil };

/**
 * Holds a run at a known point: an ACCESS EXCLUSIVE lock on the run's own score table, taken after
 * `chunks` chunks committed, makes the next chunk's write wait inside its transaction. Resolves once
 * the writer is seen waiting on that lock (no fixed sleep). `release()` lets the run go on.
 */
export async function holdRunAtChunkWrite(
  t: TestDatabase,
  child: ReturnType<typeof startCli>,
  runId: string,
  chunks: number,
): Promise<{ locker: pg.PoolClient; release: () => Promise<void> }> {
  await waitForLog(child, (l) => typeof l.chunks_done === 'number' && l.chunks_done >= chunks);
  const locker = await t.pool.connect();
  await locker.query('BEGIN');
  await locker.query(`LOCK TABLE scoring."score_data_${BigInt(runId)}" IN ACCESS EXCLUSIVE MODE`);
  await waitUntil('the writer to wait on the held table', async () => {
    const { rows } = await t.pool.query<{ n: number }>(
      `SELECT count(*)::int n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'scorejob writer' AND wait_event_type = 'Lock'`,
    );
    return (rows[0]?.n ?? 0) > 0 ? true : undefined;
  });
  let released = false;
  return {
    locker,
    release: async () => {
      if (released) return;
      released = true;
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release(true);
    },
  };
}

/** Starts a run of many small chunks (seconds long) and returns it with its run id. */
export async function startHeldRun(t: TestDatabase, env: Record<string, string> = t.env, extra: string[] = []) {
  const child = startCli(['run', '--chunk-size', '20', ...extra], env);
  const started = await waitForLog(child, (l) => typeof l.run_id === 'string' && /started/.test(String(l.msg)));
  return { child, runId: started.run_id as string };
}

export async function runStatus(t: TestDatabase, runId: string): Promise<{ status: string; error: string | null; error_kind: string | null }> {
  const { rows } = await t.pool.query<{ status: string; error: string | null; error_kind: string | null }>(
    'SELECT status, error, error_kind FROM scoring.score_runs WHERE run_id = $1',
    [runId],
  );
  expect(rows).toHaveLength(1);
  return rows[0] as { status: string; error: string | null; error_kind: string | null };
}

/**
 * Holds the run lock as another scorejob would (through the library, on a pool of the test's own):
 * what a second process finds while a run is in flight. `release()` frees it.
 */
export async function holdRunLock(t: TestDatabase, schema = 'scoring', modelName = 'customer-value'): Promise<{ release: () => Promise<void> }> {
  const { createPool } = await import('../../src/db/pool.js');
  const { takeRunLock } = await import('../../src/ledger/runLock.js');
  const { createLogger } = await import('../../src/log.js');
  const pool = createPool(t.db, 2);
  const lock = await takeRunLock(pool, { schema, modelName, purpose: 'run', log: createLogger({ level: 'silent', pretty: false }), where: 'test' });
  return {
    release: async () => {
      await lock.release();
      await pool.end();
    },
  };
}

/** Advisory lock class of test holds (runs use 0x5c0c, migrations 0x5c0b). */
const holdClass = 0x7e57;

/** A run held at a known point (inside a transaction of its ledger), until `release()`. */
export interface ChunkHold {
  /** Resolves once the job is waiting on the hold. */
  held(timeoutMs?: number): Promise<void>;
  /** Lets the job go on, and removes the trigger. */
  release(): Promise<void>;
}

/**
 * Holds a run at a known point without sleeping: a trigger on `score_chunks` makes the transaction that
 * marks chunk `chunkNo` done wait on an advisory lock this helper holds. Until `release()`, chunks before
 * `chunkNo` are committed and chunk `chunkNo` is not (a SIGKILL now rolls it back). Any run's chunk
 * `chunkNo` waits, so create the hold just before the run it is for.
 */
export function holdAtChunk(pool: pg.Pool, chunkNo: number, schema = 'scoring'): Promise<ChunkHold> {
  return holdOnTrigger(
    pool,
    chunkNo,
    `AFTER UPDATE ON ${quote(schema)}.score_chunks FOR EACH ROW WHEN (NEW.chunk_no = ${Number(chunkNo)} AND NEW.status = 'done' AND OLD.status = 'pending')`,
  );
}

/**
 * Holds the next run as its row is created: after the start-up checks (source columns, NULL keys) and
 * before it takes its snapshot and plans. `held()` resolves once it waits.
 */
export function holdAtRunStart(pool: pg.Pool, schema = 'scoring'): Promise<ChunkHold> {
  return holdOnTrigger(pool, 0, `AFTER INSERT ON ${quote(schema)}.score_runs FOR EACH ROW`);
}

/**
 * Holds the next run (or resume) right after it has taken its snapshot of the source (recorded on the run),
 * before it plans or counts anything in it.
 */
export function holdAtSnapshot(pool: pg.Pool, schema = 'scoring'): Promise<ChunkHold> {
  return holdOnTrigger(pool, 1000, `AFTER UPDATE OF source_snapshot ON ${quote(schema)}.score_runs FOR EACH ROW`);
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

async function holdOnTrigger(pool: pg.Pool, key: number, trigger: string): Promise<ChunkHold> {
  const table = /ON (\S+)/.exec(trigger)?.[1] as string;
  const holder = await pool.connect();
  await holder.query('SELECT pg_advisory_lock($1, $2)', [holdClass, key]);
  await pool.query(`
    CREATE OR REPLACE FUNCTION public.test_hold_${key}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_lock_shared(${holdClass}, ${key});
      PERFORM pg_advisory_unlock_shared(${holdClass}, ${key});
      RETURN NEW;
    END $$`);
  await pool.query(`DROP TRIGGER IF EXISTS test_hold_${key} ON ${table}`);
  await pool.query(`CREATE TRIGGER test_hold_${key} ${trigger} EXECUTE FUNCTION public.test_hold_${key}()`);
  let released = false;
  return {
    async held(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { rows } = await pool.query<{ n: number }>(
          `SELECT count(*)::int n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1::int::oid AND objid = $2::int::oid
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          [holdClass, key],
        );
        if ((rows[0]?.n ?? 0) > 0) return;
        if (Date.now() > deadline) throw new Error(`nothing reached the hold (${trigger}) within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 25)); // polling a condition, not deciding where anything lands
      }
    },
    async release() {
      if (released) return;
      released = true;
      await holder.query('SELECT pg_advisory_unlock($1, $2)', [holdClass, key]);
      holder.release();
      await pool.query(`DROP TRIGGER IF EXISTS test_hold_${key} ON ${table}`);
    },
  };
}
