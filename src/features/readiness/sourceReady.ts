import type pg from 'pg';
import { SourceNotReadyError, StaleSourceError, UsageError } from '../../errors.js';
import { formatDuration } from '../../format.js';
import { withTransaction } from '../../db/sql.js';
import { SqlState, sqlStateOf } from '../../db/sqlstate.js';

/** What the readiness check needs of a run. */
export interface ReadinessCheck {
  /** The manifest's `source.ready_when`; undefined: the source counts as always ready. */
  readyWhen: string | undefined;
  /** The manifest file, for messages about the query. */
  manifestFile: string;
  /** The database, as describeDb names it. */
  where: string;
  /** The tick the run is for (`--if-due`, `scorejob schedule`); the deadline counts from it. */
  tickAt: Date | undefined;
  /** `--ready-deadline`, ms after the tick. */
  deadlineMs: number | undefined;
  now?: Date | undefined;
}

/** Statement timeout of the query: a readiness probe that takes longer is a query to fix, not a wait. */
const probeTimeoutMs = 60_000;
/**
 * Lock timeout of the query: a load that rewrites what the query reads (TRUNCATE and reload in one
 * transaction) holds a lock on it until it commits; waiting for it is "not ready yet", not an error.
 */
export const probeLockTimeoutMs = 10_000;

/**
 * `source.ready_when`, before anything is written: true when it holds; undefined without a query.
 * Not ready: {@link SourceNotReadyError} (75, a later tick tries again), or past `--ready-deadline`
 * after the tick {@link StaleSourceError} (1). A query that fails or does not return one boolean is a
 * {@link UsageError} (2) naming the manifest field.
 */
export async function checkSourceReady(client: pg.ClientBase, c: ReadinessCheck): Promise<boolean | undefined> {
  if (c.readyWhen === undefined) {
    if (c.deadlineMs !== undefined)
      throw new UsageError(`--ready-deadline: ${c.manifestFile} has no source.ready_when, so there is nothing to wait for; add one or leave the flag out`);
    return undefined;
  }
  if (c.deadlineMs !== undefined && c.tickAt === undefined) {
    throw new UsageError('--ready-deadline counts from the tick: use it with --if-due EXPR (or in `scorejob schedule`)');
  }
  const value = await probe(client, c);
  if (value === true) return true;
  const result =
    value === 'locked'
      ? `waited ${probeLockTimeoutMs / 1000} s for a lock (a load in progress holds what it reads)`
      : `returned ${value === null ? 'NULL' : 'false'}`;
  const what = `source.ready_when of ${c.manifestFile} ${result} on ${c.where}`;
  const now = c.now ?? new Date();
  if (c.tickAt !== undefined && c.deadlineMs !== undefined) {
    const late = now.getTime() - c.tickAt.getTime();
    const deadline = `--ready-deadline ${formatDuration(c.deadlineMs)} after the tick ${c.tickAt.toISOString()}`;
    if (late > c.deadlineMs) {
      throw new StaleSourceError(
        `source not ready past the deadline: ${what}, ${formatDuration(late)} after the tick (${deadline}); nothing was written: see why the upstream load is late, the next firing tries again`,
      );
    }
    throw new SourceNotReadyError(`source not ready: ${what}; nothing was done, a later firing tries again (${deadline})`);
  }
  throw new SourceNotReadyError(`source not ready: ${what}; nothing was done, a later firing tries again`);
}

/** The query's one boolean (or NULL), read-only and under a statement timeout; `locked` when a lock it needs stayed taken. */
async function probe(client: pg.ClientBase, c: ReadinessCheck): Promise<boolean | null | 'locked'> {
  const field = `${c.manifestFile}: source.ready_when`;
  let result: pg.QueryResult;
  try {
    result = await withTransaction(client, async (t) => {
      // Read-only: the query comes from a file, and "before anything is written" must hold whatever it says.
      await t.query(`SET TRANSACTION READ ONLY`);
      await t.query(`SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true)`, [
        String(probeTimeoutMs),
        String(probeLockTimeoutMs),
      ]);
      return t.query({ text: c.readyWhen!, rowMode: 'array' });
    });
  } catch (err) {
    if (sqlStateOf(err) === SqlState.lockNotAvailable) return 'locked';
    throw new UsageError(`${field} failed on ${c.where}: ${(err as Error).message}; fix the query (it must return one boolean)`, { cause: err });
  }
  const { rows, fields } = result as pg.QueryResult<unknown[]>;
  const value = rows[0]?.[0];
  if (rows.length !== 1 || fields.length !== 1 || (value !== null && typeof value !== 'boolean')) {
    throw new UsageError(
      `${field} must return one row with one boolean column; on ${c.where} it returned ${rows.length} row(s) of ${fields.length} column(s)${rows.length === 1 && fields.length === 1 ? ` (a ${typeof value})` : ''}`,
    );
  }
  return value;
}
