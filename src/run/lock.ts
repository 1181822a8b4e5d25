import type pg from 'pg';

/** Advisory lock namespace of runs (migrations use 0x5c0b). The second key is the schema's hash. */
const runLockClass = 0x5c0c;

/**
 * One writer at a time (guarantee 3): a session-level advisory lock on the ledger connection, held
 * for the run's whole life. It dies with the session, so a killed process never blocks the next run.
 */
export async function tryRunLock(client: pg.ClientBase, schema: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [runLockClass, schema]);
  return rows[0]?.ok === true;
}

export async function releaseRunLock(client: pg.ClientBase, schema: string): Promise<void> {
  await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [runLockClass, schema]);
}

/** The backend pid of the session holding the run lock, if any (for the "who holds it" message). */
export async function runLockHolderPid(client: pg.ClientBase, schema: string): Promise<number | undefined> {
  const { rows } = await client.query<{ pid: number }>(
    `SELECT l.pid FROM pg_locks l
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int::oid AND l.objid = hashtext($2)::oid AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [runLockClass, schema],
  );
  return rows[0]?.pid;
}
