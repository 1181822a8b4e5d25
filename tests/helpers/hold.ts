import type pg from 'pg';

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
  return holdOnTrigger(pool, chunkNo, `AFTER UPDATE ON ${quote(schema)}.score_chunks FOR EACH ROW WHEN (NEW.chunk_no = ${Number(chunkNo)} AND NEW.status = 'done' AND OLD.status = 'pending')`);
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
