import type pg from 'pg';

/** Advisory lock class of test holds (runs use 0x5c0c, migrations 0x5c0b). */
const holdClass = 0x7e57;

/** A run held inside the transaction that commits chunk `chunkNo`, until `release()`. */
export interface ChunkHold {
  /** Resolves once the job's writer is waiting on the hold (the chunk is read, its commit not done). */
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
export async function holdAtChunk(pool: pg.Pool, chunkNo: number, schema = 'scoring'): Promise<ChunkHold> {
  const s = `"${schema.replaceAll('"', '""')}"`;
  const key = chunkNo;
  const holder = await pool.connect();
  await holder.query('SELECT pg_advisory_lock($1, $2)', [holdClass, key]);
  await pool.query(`
    CREATE OR REPLACE FUNCTION public.test_hold_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_lock_shared(${holdClass}, NEW.chunk_no);
      PERFORM pg_advisory_unlock_shared(${holdClass}, NEW.chunk_no);
      RETURN NEW;
    END $$`);
  await pool.query(`DROP TRIGGER IF EXISTS test_hold_chunk ON ${s}.score_chunks`);
  await pool.query(
    `CREATE TRIGGER test_hold_chunk AFTER UPDATE ON ${s}.score_chunks FOR EACH ROW
       WHEN (NEW.chunk_no = ${Number(chunkNo)} AND NEW.status = 'done' AND OLD.status = 'pending') EXECUTE FUNCTION public.test_hold_chunk()`,
  );
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
        if (Date.now() > deadline) throw new Error(`no run reached the hold at chunk ${chunkNo} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 25)); // polling a condition, not deciding where anything lands
      }
    },
    async release() {
      if (released) return;
      released = true;
      await holder.query('SELECT pg_advisory_unlock($1, $2)', [holdClass, key]);
      holder.release();
      await pool.query(`DROP TRIGGER IF EXISTS test_hold_chunk ON ${s}.score_chunks`);
    },
  };
}
