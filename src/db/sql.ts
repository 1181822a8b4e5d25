import pg from 'pg';

/**
 * An identifier (schema, table, column) quoted for SQL: the one place a name enters a statement.
 * pg's escapeIdentifier underneath (it doubles embedded quotes).
 */
export function quoteIdent(name: string): string {
  return pg.escapeIdentifier(name);
}

/**
 * A value as a SQL literal, for the few statements that take no bind parameters (COPY): pg's
 * escapeLiteral (quotes doubled, backslashes as an E'' string). Only for values the database gave.
 */
export function quoteLiteral(value: string): string {
  return pg.escapeLiteral(value);
}

/** `table` or `schema.table` (split on the first dot), each part quoted by {@link quoteIdent}. */
export function quoteQualified(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? quoteIdent(name) : `${quoteIdent(name.slice(0, dot))}.${quoteIdent(name.slice(dot + 1))}`;
}

/**
 * `fn` on a connection of `pool`, released in `finally` (graphile-worker's withPgClient).
 * `discardOnError`: a connection `fn` failed on is destroyed rather than returned to the pool
 * (it may be mid-transaction or mid-COPY).
 */
export async function withClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>, opts: { discardOnError?: boolean } = {}): Promise<T> {
  const client = await pool.connect();
  let ok = false;
  try {
    const result = await fn(client);
    ok = true;
    return result;
  } finally {
    client.release(opts.discardOnError === true && !ok);
  }
}

/**
 * `fn` in one transaction on `client`: COMMIT when it returns, ROLLBACK when it throws (the error
 * passes through). A failed ROLLBACK is ignored: the connection is usually gone, which ends the
 * transaction anyway, and the original error is the one worth reporting. A check that must hold at
 * COMMIT (the run lock's fence) is the last thing `fn` does.
 */
export async function withTransaction<C extends pg.ClientBase, T>(client: C, fn: (client: C) => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
