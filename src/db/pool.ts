import pg from 'pg';
import { describeDb, type DbConfig } from '../config.js';
import { ScorejobError, ExitCode, UsageError } from '../errors.js';
import { describeDbError } from './describeError.js';
import { SqlState, sqlStateOf } from './sqlstate.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/**
 * A pool for one command. COPY always runs on a client of its own taken from it. The one way to a
 * connection: a target nobody configured (`db.refusal`) is refused here (exit 2), before any connection.
 */
export function createPool(db: DbConfig, max = 6): pg.Pool {
  if (db.refusal !== undefined) throw new UsageError(db.refusal);
  const pool = new pg.Pool({
    host: db.host,
    port: db.port,
    user: db.user,
    database: db.database,
    password: db.password,
    ssl: sslOption(db.sslmode),
    max,
    application_name: 'scorejob',
    connectionTimeoutMillis: 15_000,
    keepAlive: true,
  });
  // An idle client whose server went away emits 'error' on the pool; without a listener that kills the process.
  pool.on('error', () => undefined);
  // Likewise a checked-out client whose connection is terminated while it waits between queries:
  // the error then surfaces, handled, on that client's next query.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

function sslOption(mode: string | undefined): pg.PoolConfig['ssl'] {
  if (mode === undefined || mode === 'disable' || mode === 'allow' || mode === 'prefer') return undefined;
  if (mode === 'verify-ca' || mode === 'verify-full') return { rejectUnauthorized: true };
  return { rejectUnauthorized: false };
}

/**
 * Opens a first connection to prove the server is there, turning the usual failures into one clear line:
 * wrong password or missing database are configuration (exit 2); an unreachable server is a failure to retry later (exit 1).
 */
export async function checkConnection(pool: pg.Pool, db: DbConfig): Promise<void> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    const state = sqlStateOf(err);
    const config = state === SqlState.invalidPassword || state === SqlState.invalidAuthorization || state === SqlState.invalidCatalogName;
    throw new ScorejobError(`cannot connect to PostgreSQL ${describeDb(db)}: ${describeDbError(err, db)}`, config ? ExitCode.usage : ExitCode.runFailed, {
      cause: err,
    });
  }
  client.release();
}

/** `user@host:port/db` of the database a client is connected to (pg keeps the parameters it connected with on the client). */
export function databaseOf(client: pg.ClientBase): string {
  const c = client as unknown as { user?: string; host?: string; port?: number; database?: string };
  return describeDb({ user: c.user ?? '?', host: c.host ?? '?', port: c.port ?? 0, database: c.database ?? '?' });
}

/**
 * A connection for one of a run's long-lived roles (ledger, lock, reader, writer), named for
 * pg_stat_activity. A role's `idle_session_timeout` is switched off for it: these sessions wait idle
 * on purpose while other stages work, and end with the process (the setting exists from PostgreSQL 14,
 * hence the lookup instead of SET).
 */
export async function connectAs(pool: pg.Pool, role: string): Promise<pg.PoolClient> {
  const client = await pool.connect();
  try {
    await client.query(
      `SELECT set_config('application_name', $1, false), (SELECT set_config(name, '0', false) FROM pg_settings WHERE name = 'idle_session_timeout')`,
      [`scorejob ${role}`],
    );
  } catch (err) {
    client.release(true);
    throw err;
  }
  return client;
}
