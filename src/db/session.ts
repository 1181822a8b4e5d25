import type { DbConfig } from '../config.js';
import { assertMigrated } from './migrate.js';
import { checkConnection, createPool, type Pool, type PoolClient } from './pool.js';

/** What a session needs of the configuration: where to connect, and the scoring schema to check. */
export interface SessionConfig {
  db: DbConfig;
  schema: string;
}

/** The session's own connection: a plain pooled client, or one that replaces itself after a loss (ResilientClient). */
export interface SessionConnection {
  /** A getter where the connection can be replaced: read it at each use, never keep a copy. */
  readonly client: PoolClient;
  close(): Promise<void> | void;
}

/** Options of {@link withSession}. */
export interface SessionOptions {
  /** Most connections the pool opens, as they are used: the session's own plus what the body takes. Default 6. */
  connections?: number;
  /**
   * What is checked before the body runs: `migrated` (default) refuses a database whose scoring schema
   * is missing or behind, with the advice to run `scorejob migrate`; `reachable` only proves the
   * connection (migrate itself, seed, commands that read the source); `nothing` leaves both to a body
   * that must outlive an unreachable server (the scheduler starts anyway and retries).
   */
  requires?: 'migrated' | 'reachable' | 'nothing';
  /**
   * The server ends a transaction left idle this long, on every connection of the session (pg's
   * `idle_in_transaction_session_timeout`): a stalled worker must not keep a claimed chunk's row locked past its lease.
   */
  idleInTransactionTimeoutMs?: number;
  /** Opens the session's own connection (default: a plain client from the pool), e.g. one named for pg_stat_activity, or resilient. */
  connect?: (pool: Pool) => Promise<SessionConnection>;
  /**
   * false: no connection is held for the body, which works through the pool alone (a long-lived body
   * keeps no idle connection open between its uses). The migrated check then borrows one and gives it back.
   */
  client?: boolean;
}

/** A session whose body works through the pool. */
export interface PoolSession {
  readonly pool: Pool;
  /**
   * Registers what the body acquired (a lock, a second connection) to be released when the session
   * ends, in reverse order and before the session's connection and pool, however the body ended.
   */
  defer(release: () => unknown): void;
}

/** A session with its own connection, checked as the options required. */
export interface Session extends PoolSession {
  /** The session's connection (a getter: a resilient connection replaces a lost client). */
  readonly client: PoolClient;
}

/**
 * The one frame around a command's database work: opens the pool, proves the connection (an error
 * naming the database: exit 2 for a wrong password or database, 1 for an unreachable server), checks
 * the schema is migrated (exit 2 with the advice to run `scorejob migrate`), runs `fn`, and releases in
 * reverse order in `finally`: what `fn` deferred, the session's connection, the pool. A configuration
 * that names no database is refused before any connection (createPool, exit 2).
 */
export async function withSession<T>(config: SessionConfig, options: SessionOptions & { client: false }, fn: (session: PoolSession) => Promise<T>): Promise<T>;
export async function withSession<T>(config: SessionConfig, options: SessionOptions, fn: (session: Session) => Promise<T>): Promise<T>;
export async function withSession<T>(config: SessionConfig, options: SessionOptions, fn: (session: Session) => Promise<T>): Promise<T> {
  const requires = options.requires ?? 'migrated';
  const pool = createPool(config.db, options.connections);
  // Before the first connection: the setting is sent when a connection opens.
  if (options.idleInTransactionTimeoutMs !== undefined) pool.options.idle_in_transaction_session_timeout = options.idleInTransactionTimeoutMs;
  const releases: (() => unknown)[] = [];
  let failed = false;
  try {
    if (requires !== 'nothing') await checkConnection(pool, config.db);
    const held = options.client !== false;
    const conn = held || requires === 'migrated' ? await (options.connect ?? plainConnection)(pool) : undefined;
    if (conn !== undefined) {
      releases.push(() => conn.close());
      if (requires === 'migrated') await assertMigrated(conn.client, config.schema);
      if (!held) await releases.pop()?.();
    }
    const session: Session = {
      pool,
      defer: (release) => void releases.push(release),
      get client(): PoolClient {
        if (conn === undefined || !held) throw new Error('this session holds no connection of its own (client: false): use its pool');
        return conn.client;
      },
    };
    return await fn(session);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    try {
      await releaseAll(releases.reverse(), failed);
    } finally {
      await pool.end().catch(() => undefined);
    }
  }
}

async function plainConnection(pool: Pool): Promise<SessionConnection> {
  const client = await pool.connect();
  return { client, close: () => client.release() };
}

/**
 * Runs every release even when one throws: a failed lock release must not leave the connection and
 * the pool open. The body's own error wins; after a body that succeeded, the first release error is thrown.
 */
async function releaseAll(releases: (() => unknown)[], bodyFailed: boolean): Promise<void> {
  let first: { err: unknown } | undefined;
  for (const release of releases) {
    try {
      await release();
    } catch (err) {
      first ??= { err };
    }
  }
  if (first !== undefined && !bodyFailed) throw first.err;
}
