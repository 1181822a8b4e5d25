import pg from 'pg';
import { SnapshotLostError } from '../errors.js';
import { SqlState, sqlStateOf } from './sqlstate.js';

/** What `pg_export_snapshot()` returns, e.g. `00000003-0000001B-1`: checked before it goes into SQL. */
const snapshotId = /^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$/;

/**
 * A snapshot of the whole database, exported by a REPEATABLE READ transaction held open on a connection of
 * its own, so that any number of other transactions (one per chunk read, on any connection) can read exactly
 * what it sees (`SET TRANSACTION SNAPSHOT`). The exporting transaction reads no table, so it holds no lock
 * on the source: only its xmin, which keeps VACUUM from removing rows the snapshot still sees.
 */
export class ExportedSnapshot {
  private lost = false;
  private closed = false;

  private constructor(
    private readonly client: pg.Client,
    /** The id other transactions import. */
    readonly id: string,
  ) {
    const gone = () => (this.lost = true);
    client.on('error', gone);
    client.on('end', gone);
  }

  /** Connects with `config` (a pool's options: the same server, role and TLS) and exports a snapshot. */
  static async export(config: pg.ClientConfig): Promise<ExportedSnapshot> {
    const client = new pg.Client(config);
    client.on('error', () => undefined); // until the snapshot listens: a connection lost while connecting is reported by connect()
    await client.connect();
    try {
      await client.query(`SET application_name = 'scorejob snapshot'`);
      // The transaction idles for the whole run by design: a role's or database's idle_in_transaction_session_timeout
      // (or transaction_timeout, PostgreSQL 17) would end it, and the run's snapshot with it.
      await client.query(
        `SELECT pg_catalog.set_config(name, '0', false) FROM pg_catalog.pg_settings WHERE name IN ('idle_in_transaction_session_timeout', 'transaction_timeout')`,
      );
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const { rows } = await client.query<{ id: string }>('SELECT pg_catalog.pg_export_snapshot() AS id');
      const id = rows[0]?.id ?? '';
      if (!snapshotId.test(id)) throw new Error(`pg_export_snapshot() returned an unexpected id "${id}"`);
      return new ExportedSnapshot(client, id);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }

  /** Whether the exporting transaction is still open (a round trip unless its connection is known to be gone). */
  async alive(): Promise<boolean> {
    if (this.lost) return false;
    try {
      await this.client.query('SELECT 1');
      return true;
    } catch {
      this.lost = true;
      return false;
    }
  }

  /** Ends the exporting transaction: the snapshot can no longer be imported, and VACUUM may clean up past it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = this.lost = true;
    await this.client.end().catch(() => undefined);
  }
}

/**
 * Runs `fn` in a REPEATABLE READ READ ONLY transaction on `client` that reads snapshot `id`, and commits.
 * A transaction per call, short: it holds an ACCESS SHARE lock on what it reads only until it commits,
 * so a run never holds a lock on the source between its reads.
 */
export async function inSnapshot<T>(client: pg.ClientBase, id: string, fn: () => Promise<T>): Promise<T> {
  await client.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ${setSnapshot(client, id)}`).catch((err: unknown) => {
    throw snapshotError(err, id);
  });
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * `statement` in a transaction of its own that reads snapshot `id` and commits, as one simple-query
 * message: one round trip, and the server starts reading at once. (Sent as separate queries, each part
 * would wait for the event loop to be free of the scoring work before the next went out, and a prefetch
 * would start late.) On error the transaction is left aborted: roll back, and pass the error through
 * {@link snapshotError}.
 */
export function inSnapshotSql(client: Pick<pg.ClientBase, 'escapeLiteral'>, id: string, statement: string): string {
  return `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ${setSnapshot(client, id)}; ${statement}; COMMIT`;
}

/** The error a read in snapshot `id` failed with, as a SnapshotLostError when the snapshot is gone. */
export function snapshotError(err: unknown, id: string): unknown {
  // What SET TRANSACTION SNAPSHOT answers once the exporting transaction has ended: invalid_parameter_value
  // (PostgreSQL 15: "invalid snapshot identifier"), or undefined_object (18: "snapshot … does not exist").
  const routine = (err as { routine?: unknown } | null)?.routine;
  const state = sqlStateOf(err);
  if ((state === SqlState.invalidParameterValue || state === SqlState.undefinedObject) && (routine === undefined || routine === 'ImportSnapshot')) {
    return new SnapshotLostError(`the run's snapshot of the source (${id}) is gone: the connection holding it was lost`, { cause: err });
  }
  return err;
}

/** SET takes no bind parameters: the id is checked against the form pg_export_snapshot() gives and quoted as a literal. */
function setSnapshot(client: Pick<pg.ClientBase, 'escapeLiteral'>, id: string): string {
  if (!snapshotId.test(id)) throw new Error(`not a snapshot id: "${id}"`);
  return `SET TRANSACTION SNAPSHOT ${client.escapeLiteral(id)}`;
}
