import pg from 'pg';
import type { TestDatabase } from './db.js';
import { waitUntil } from './waitUntil.js';

/** Advisory lock keys of the hold (class, object); far from the job's own lock key (0x5c0c). */
const holdKey = [0x7e57, 1] as const;

export interface ChunkHold {
  /** Resolves once the job's writer waits at the hold: its scores and rejects are written, its transaction open. */
  reached(timeoutMs?: number): Promise<void>;
  /**
   * Ends the job's sessions of these roles (`scorejob writer`, …; default all three), as the server does once
   * it notices that a killed client is gone, and waits until they are gone.
   */
  endJobSessions(roles?: readonly string[]): Promise<void>;
  /** Lets the job go on, and removes the trigger. */
  release(): Promise<void>;
}

/**
 * Holds a run inside chunk `chunkNo`'s transaction, at a known point: a trigger on score_chunks makes the
 * UPDATE that marks the chunk done wait on an advisory lock this test holds. The job's COPY of the
 * chunk's scores and its rejects are then written but not committed. The trigger is in the test's own
 * database (created here, dropped by release); it holds every run that reaches that chunk.
 */
export async function holdChunk(t: TestDatabase, chunkNo: number, schema = 'scoring'): Promise<ChunkHold> {
  const s = `"${schema.replaceAll('"', '""')}"`;
  await t.pool.query(`
    CREATE OR REPLACE FUNCTION public.sj_test_hold_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.status = 'done' AND OLD.status <> 'done' AND NEW.chunk_no = ${Number(chunkNo)} THEN
        PERFORM pg_advisory_xact_lock(${holdKey[0]}, ${holdKey[1]});
      END IF;
      RETURN NEW;
    END $$`);
  await t.pool.query(
    `CREATE OR REPLACE TRIGGER sj_test_hold_chunk BEFORE UPDATE ON ${s}.score_chunks FOR EACH ROW EXECUTE FUNCTION public.sj_test_hold_chunk()`,
  );
  const holder = new pg.Client({ connectionString: t.url });
  await holder.connect();
  await holder.query('SELECT pg_advisory_lock($1, $2)', [...holdKey]);
  // The job names its connections `scorejob ledger|reader|writer`; the test's own pool is plain `scorejob`.
  const names = (roles: readonly string[]) => roles.map((r) => `scorejob ${r}`);
  const jobSessions = async (roles: readonly string[], where = ''): Promise<number> =>
    (
      await t.pool.query<{ n: number }>(
        `SELECT count(*)::int n FROM pg_stat_activity WHERE datname = current_database() AND application_name = ANY($1) ${where}`,
        [names(roles)],
      )
    ).rows[0]?.n ?? 0;
  let released = false;
  return {
    reached: (timeoutMs = 60_000) =>
      waitUntil(
        `chunk ${chunkNo} waits at the hold`,
        async () => (await jobSessions(['writer'], `AND wait_event_type = 'Lock' AND wait_event = 'advisory'`)) > 0,
        timeoutMs,
      ).then(() => undefined),
    endJobSessions: async (roles = ['ledger', 'reader', 'writer']) => {
      await t.pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = ANY($1)`, [
        names(roles),
      ]);
      await waitUntil(`the job's ${roles.join(', ')} sessions are gone`, async () => (await jobSessions(roles)) === 0, 30_000);
    },
    release: async () => {
      if (released) return;
      released = true;
      await holder.end();
      // Without its lock the trigger holds nothing. Dropping it waits for every open chunk transaction, and
      // one may be held by another hold (holdWorkerChunks) released later: then it stays, harmless.
      const c = await t.pool.connect();
      try {
        await c.query('BEGIN');
        await c.query(`SET LOCAL lock_timeout = '500ms'`);
        await c.query(`DROP TRIGGER IF EXISTS sj_test_hold_chunk ON ${s}.score_chunks`);
        await c.query('COMMIT');
      } catch {
        await c.query('ROLLBACK');
      } finally {
        c.release();
      }
    },
  };
}

/** Where a run's scores are: its own table while it has one by that name, else its rows of score_data. */
async function runScores(t: TestDatabase, runId: string, schema: string): Promise<string> {
  const { rows } = await t.pool.query<{ table: string | null }>(`SELECT to_regclass(format('%I.%I', $1::text, 'score_data_' || $2::text))::text AS table`, [
    schema,
    runId,
  ]);
  return rows[0]?.table
    ? `(SELECT customer_id FROM ${rows[0].table})`
    : `(SELECT customer_id FROM "${schema.replaceAll('"', '""')}".score_data WHERE run_id = ${BigInt(runId).toString()})`;
}

/**
 * What a chunk whose transaction never committed must look like (a chunk's scores and its done mark commit together): pending,
 * none of its scores or rejects visible, and the run's scores and rejects exactly those of its done
 * chunks. Returns the chunk's key range (lo, hi].
 */
export async function chunkState(t: TestDatabase, runId: string, chunkNo: number, schema = 'scoring') {
  const s = `"${schema.replaceAll('"', '""')}"`;
  const scores = await runScores(t, runId, schema);
  const { rows } = await t.pool.query<{
    status: string;
    lo: string;
    hi: string;
    in_chunk_scores: number;
    in_chunk_rejects: number;
    scores: number;
    rejects: number;
    done_scored: number;
    done_rejected: number;
  }>(
    `SELECT c.status, c.key_lo::text lo, c.key_hi::text hi,
            (SELECT count(*)::int FROM ${scores} x WHERE x.customer_id > c.key_lo AND x.customer_id <= c.key_hi) in_chunk_scores,
            (SELECT count(*)::int FROM ${s}.score_rejects j WHERE j.run_id = c.run_id AND j.customer_id > c.key_lo AND j.customer_id <= c.key_hi) in_chunk_rejects,
            (SELECT count(*)::int FROM ${scores} x) scores,
            (SELECT count(*)::int FROM ${s}.score_rejects j WHERE j.run_id = c.run_id) rejects,
            (SELECT coalesce(sum(rows_scored), 0)::int FROM ${s}.score_chunks d WHERE d.run_id = c.run_id AND d.status = 'done') done_scored,
            (SELECT coalesce(sum(rows_rejected), 0)::int FROM ${s}.score_chunks d WHERE d.run_id = c.run_id AND d.status = 'done') done_rejected
       FROM ${s}.score_chunks c WHERE c.run_id = $1 AND c.chunk_no = $2`,
    [runId, chunkNo],
  );
  const r = rows[0];
  if (!r) throw new Error(`run ${runId} has no chunk ${chunkNo}`);
  return r;
}

/** A hold on chosen workers' chunk commits (see {@link holdWorkerChunks}). */
export interface WorkerHold {
  /** From now on, holds the chunk commits of the worker with this process id. */
  add(pid: number): Promise<void>;
  /** Resolves once a commit of a held worker waits at the hold (its scores written, its transaction open). */
  reached(timeoutMs?: number): Promise<void>;
  /** Lets the workers' commits go on, and removes the trigger. */
  release(): Promise<void>;
}

/**
 * Holds every chunk commit of the workers whose process ids are added (the claim's pid on the chunk's
 * row): the UPDATE that marks their chunk done waits on an advisory lock this test holds, inside the
 * chunk's transaction. Other workers' commits go on. Create it before the run starts: creating a trigger
 * on score_chunks waits for every open chunk transaction (one held by {@link holdChunk} would never end);
 * the pids go into a table of their own, which needs no such lock.
 */
export async function holdWorkerChunks(t: TestDatabase, slot = 1, schema = 'scoring'): Promise<WorkerHold> {
  const s = `"${schema.replaceAll('"', '""')}"`;
  const key = [0x7e57, 10 + slot] as const;
  const n = Number(slot);
  await t.pool.query(`CREATE TABLE IF NOT EXISTS public.sj_test_held_pids_${n} (pid integer PRIMARY KEY)`);
  await t.pool.query(`
    CREATE OR REPLACE FUNCTION public.sj_test_hold_worker_${n}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.status = 'done' AND OLD.status <> 'done' AND EXISTS (SELECT 1 FROM public.sj_test_held_pids_${n} h WHERE h.pid = NEW.claim_pid) THEN
        PERFORM pg_advisory_xact_lock(${key[0]}, ${key[1]});
      END IF;
      RETURN NEW;
    END $$`);
  await t.pool.query(
    `CREATE OR REPLACE TRIGGER sj_test_hold_worker_${n} BEFORE UPDATE ON ${s}.score_chunks FOR EACH ROW EXECUTE FUNCTION public.sj_test_hold_worker_${n}()`,
  );
  const holder = new pg.Client({ connectionString: t.url });
  await holder.connect();
  await holder.query('SELECT pg_advisory_lock($1, $2)', [...key]);
  let released = false;
  return {
    add: async (pid) => {
      await t.pool.query(`INSERT INTO public.sj_test_held_pids_${n} VALUES ($1) ON CONFLICT DO NOTHING`, [pid]);
    },
    reached: (timeoutMs = 60_000) =>
      waitUntil(
        "a held worker's chunk waits at the hold",
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
    release: async () => {
      if (released) return;
      released = true;
      // The lock first: a held transaction read the pids table (a TRUNCATE would wait for it).
      await holder.end();
      await t.pool.query(`DELETE FROM public.sj_test_held_pids_${n}`);
    },
  };
}
