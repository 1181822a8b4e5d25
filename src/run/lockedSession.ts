import type pg from 'pg';
import type { Config } from '../config.js';
import { describeDb } from '../config.js';
import { withTransaction } from '../db/sql.js';
import type { Pool } from '../db/pool.js';
import { ResilientClient } from '../db/resilientClient.js';
import { withSession, type Session } from '../db/session.js';
import { UsageError } from '../errors.js';
import { disposeFeatures, type RunFeature } from '../features/index.js';
import { checkSource } from '../features/sourceCheck.js';
import { Ledger } from '../ledger/ledger.js';
import { takeRunLock, type LockPurpose, type RunLock } from '../ledger/runLock.js';
import type { Logger } from '../log.js';
import type { LoadedModel } from '../model/load.js';

/** A pool, the ledger connection, the run lock, and the ledger, for one run's life. */
export interface LockedSession {
  pool: pg.Pool;
  /** The ledger connection (a getter: a lost one is replaced, see recover). */
  readonly client: pg.PoolClient;
  ledger: Ledger;
  config: Config;
  lock: RunLock;
  /** After a connection loss: the lock must still be ours (else LockLostError) and the ledger connection up. */
  recover(): Promise<void>;
  /** fn in one transaction on the ledger connection. */
  inTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
}

/** What a locked session is opened for: the run's model and features (freed with the session), and why. */
export interface SessionOf {
  model: LoadedModel;
  features: readonly RunFeature[];
  purpose: LockPurpose;
}

/**
 * Opens the pool and the ledger connection, refuses an un-migrated or read-only database or a source
 * that lacks what the model (or a feature) needs, takes the run lock (or exits 75 naming the holder, 69
 * if it is stuck), marks dead runs interrupted, runs fn, and releases everything in reverse order.
 */
export async function withLockedLedger<T>(ctx: { config: Config; log: Logger }, of: SessionOf, fn: (s: LockedSession) => Promise<T>): Promise<T> {
  let ledgerConn: ResilientClient | undefined;
  const connect = async (pool: Pool): Promise<ResilientClient> => (ledgerConn = await ResilientClient.connect(pool, { role: 'ledger', log: ctx.log }));
  try {
    // ledger, lock, reader, two writers (chunkLoop.ts), one spare while a lost connection is being replaced,
    // and one for a shared run's claims and lease renewals (claimLoop.ts); a pool opens connections only as used.
    return await withSession(ctx.config, { connections: 7, connect }, async (s) => fn(await lockSession(s, ledgerConn as ResilientClient, ctx, of)));
  } finally {
    disposeFeatures(of.features);
    of.model.dispose();
  }
}

/** The checks before the lock, then the lock (released with the session), on the session's resilient ledger connection. */
async function lockSession(s: Session, conn: ResilientClient, ctx: { config: Config; log: Logger }, of: SessionOf): Promise<LockedSession> {
  const { config, log } = ctx;
  await assertWritable(conn.client, config);
  await checkSource(conn.client, of.model);
  for (const f of of.features) await f.check?.(conn.client);
  const ledger = new Ledger(config.schema);
  const dead: string[] = [];
  const held = await takeRunLock(s.pool, {
    schema: config.schema,
    modelName: of.model.manifest.name,
    purpose: of.purpose,
    log,
    where: describeDb(config.db),
    ledger,
    onDead: (ids) => dead.push(...ids),
  });
  s.defer(() => held.release());
  for (const id of dead) log.warn({ dead_run_id: id }, `run ${id} had stopped without a word; marked interrupted (resume it with \`scorejob resume ${id}\`)`);
  return {
    pool: s.pool,
    ledger,
    config,
    lock: held,
    get client() {
      return conn.client;
    },
    recover: async () => {
      await held.ensure();
      await conn.ensure();
    },
    inTransaction: (f) => withTransaction(conn.client, f),
  };
}

/** A read-only database (default_transaction_read_only, a standby) is refused before anything is tried. */
async function assertWritable(client: pg.ClientBase, config: Config): Promise<void> {
  const { rows } = await client.query<{ ro: string }>(`SELECT current_setting('transaction_read_only') AS ro`);
  if (rows[0]?.ro === 'on') {
    throw new UsageError(
      `database ${describeDb(config.db)} is read-only (default_transaction_read_only is on, or it is a standby): scorejob needs to write its ledger and scores`,
    );
  }
}
