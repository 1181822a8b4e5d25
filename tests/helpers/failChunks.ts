import pg from 'pg';
import type { TestDatabase } from './db.js';
import { waitUntil } from './waitUntil.js';

/** Chosen workers' chunk commits fail (see {@link failWorkerChunks}). */
export interface WorkerFailure {
  /**
   * From now on, every chunk commit of the worker with this process id raises SQLSTATE `errcode`; with
   * `holdFromAttempt`, a commit of a chunk that already has that many attempts waits at a hold instead.
   */
  add(pid: number, errcode: string, holdFromAttempt?: number): Promise<void>;
  /** Resolves once a commit waits at the hold. */
  reached(timeoutMs?: number): Promise<void>;
  /** Lets a held commit go on (it fails then, or its killed session ends). */
  unhold(): Promise<void>;
  /** The cause fixed: removes the trigger (call it while no chunk transaction is open). */
  fix(): Promise<void>;
}

/**
 * A failure of the database, not a mock: a trigger on score_chunks makes the UPDATE that marks a chunk
 * done raise an error inside the chunk's transaction, for the workers added. P0001 (raise_exception) is a
 * permanent failure to scorejob, 40001 (serialization_failure) a transient one. Create it before the run
 * starts (a trigger waits for every open chunk transaction); the pids go into a table of their own.
 */
export async function failWorkerChunks(t: TestDatabase, schema = 'scoring'): Promise<WorkerFailure> {
  const s = `"${schema.replaceAll('"', '""')}"`;
  const key = [0x7e57, 3] as const;
  await t.pool.query(`CREATE TABLE IF NOT EXISTS public.sj_test_failing (pid integer PRIMARY KEY, errcode text NOT NULL, hold_from integer)`);
  await t.pool.query(`
    CREATE OR REPLACE FUNCTION public.sj_test_fail_worker() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE f public.sj_test_failing;
    BEGIN
      IF NEW.status = 'done' AND OLD.status <> 'done' THEN
        SELECT * INTO f FROM public.sj_test_failing WHERE pid = NEW.claim_pid;
        IF FOUND THEN
          IF f.hold_from IS NOT NULL AND OLD.attempts >= f.hold_from THEN
            PERFORM pg_advisory_xact_lock(${key[0]}, ${key[1]});
          END IF;
          RAISE EXCEPTION 'test: chunk % refused on pid %', NEW.chunk_no, NEW.claim_pid USING ERRCODE = f.errcode;
        END IF;
      END IF;
      RETURN NEW;
    END $$`);
  await t.pool.query(
    `CREATE OR REPLACE TRIGGER sj_test_fail_worker BEFORE UPDATE ON ${s}.score_chunks FOR EACH ROW EXECUTE FUNCTION public.sj_test_fail_worker()`,
  );
  const holder = new pg.Client({ connectionString: t.url });
  await holder.connect();
  await holder.query('SELECT pg_advisory_lock($1, $2)', [...key]);
  let held = true;
  const unhold = async () => {
    if (!held) return;
    held = false;
    await holder.end();
  };
  return {
    add: async (pid, errcode, holdFromAttempt) => {
      await t.pool.query(`INSERT INTO public.sj_test_failing VALUES ($1, $2, $3)`, [pid, errcode, holdFromAttempt ?? null]);
    },
    reached: (timeoutMs = 30_000) =>
      waitUntil(
        "a failing worker's chunk waits at the hold",
        async () =>
          (
            await t.pool.query<{ n: number }>(
              `SELECT count(*)::int n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1::int::oid AND objid = $2::int::oid
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
              [...key],
            )
          ).rows[0]!.n > 0,
        timeoutMs,
      ).then(() => undefined),
    unhold,
    fix: async () => {
      await unhold();
      await t.pool.query(`DROP TRIGGER IF EXISTS sj_test_fail_worker ON ${s}.score_chunks`);
      await t.pool.query(`DELETE FROM public.sj_test_failing`);
    },
  };
}
