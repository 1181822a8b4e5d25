import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeDb, resolveDb } from '../../src/config.js';
import type { Pool } from '../../src/db/pool.js';
import { withSession, type SessionConnection } from '../../src/db/session.js';
import { ExitCode, ScorejobError } from '../../src/errors.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const ended = (pool: Pool | undefined) => (pool as unknown as { ended: boolean } | undefined)?.ended;

/** A plain connection whose release is recorded in `order`. */
function recordedConnection(order: string[]): (pool: Pool) => Promise<SessionConnection> {
  return async (pool) => {
    const client = await pool.connect();
    return {
      client,
      close: () => {
        order.push('connection');
        client.release();
      },
    };
  };
}

describe('withSession: the one session frame', () => {
  let migrated: TestDatabase;
  let empty: TestDatabase;
  beforeAll(async () => {
    [migrated, empty] = await Promise.all([createTestDatabase(), createTestDatabase({ migrated: false })]);
  });
  afterAll(async () => Promise.all([migrated.drop(), empty.drop()]));

  it('hands a migrated database connection to the body, then closes the pool', async () => {
    let pool: Pool | undefined;
    const db = await withSession({ db: migrated.db, schema: 'scoring' }, {}, async (s) => {
      pool = s.pool;
      return (await s.client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db;
    });
    expect(db).toBe(migrated.name);
    expect(ended(pool)).toBe(true);
  });

  it('refuses an un-migrated database before the body runs: exit 2, naming the database and saying to run scorejob migrate', async () => {
    let ran = false;
    const err = await withSession({ db: empty.db, schema: 'scoring' }, {}, async () => {
      ran = true;
    }).catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect(err).toBeInstanceOf(ScorejobError);
    expect((err as ScorejobError).exitCode).toBe(ExitCode.usage);
    expect((err as Error).message).toContain(describeDb(empty.db));
    expect((err as Error).message).toContain('run `scorejob migrate`');
  });

  it('requires: reachable runs the body on an un-migrated database (migrate, seed)', async () => {
    const n = await withSession(
      { db: empty.db, schema: 'scoring' },
      { requires: 'reachable' },
      async ({ client }) => (await client.query('SELECT 1')).rowCount,
    );
    expect(n).toBe(1);
  });

  it('releases in reverse order (what the body deferred, its connection, the pool) when the body throws; the body error wins over a failed release', async () => {
    const order: string[] = [];
    let pool: Pool | undefined;
    const err = await withSession({ db: migrated.db, schema: 'scoring' }, { connect: recordedConnection(order) }, async (s) => {
      pool = s.pool;
      s.defer(() => order.push('first'));
      s.defer(async () => {
        order.push('second');
        throw new Error('release failed');
      });
      throw new Error('body failed');
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('body failed');
    expect(order).toEqual(['second', 'first', 'connection']);
    expect(ended(pool)).toBe(true);
  });

  it('after a body that succeeded, a failed release is thrown once every release has run', async () => {
    const order: string[] = [];
    let pool: Pool | undefined;
    const err = await withSession({ db: migrated.db, schema: 'scoring' }, { connect: recordedConnection(order) }, async (s) => {
      pool = s.pool;
      s.defer(async () => {
        order.push('lock');
        throw new Error('lock release failed');
      });
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('lock release failed');
    expect(order).toEqual(['lock', 'connection']);
    expect(ended(pool)).toBe(true);
  });

  it('client: false checks the schema on a borrowed connection and holds none while the body runs', async () => {
    const counts = await withSession({ db: migrated.db, schema: 'scoring' }, { client: false }, async ({ pool }) => ({
      total: pool.totalCount,
      idle: pool.idleCount,
    }));
    expect(counts).toEqual({ total: 1, idle: 1 });
    const refused = await withSession({ db: empty.db, schema: 'scoring' }, { client: false }, async () => 'ran').catch((e: unknown) => e);
    expect((refused as ScorejobError).exitCode).toBe(ExitCode.usage);
  });

  it('idleInTransactionTimeoutMs applies to every connection of the session, the checked one included', async () => {
    const settings = await withSession({ db: migrated.db, schema: 'scoring' }, { idleInTransactionTimeoutMs: 7000, client: false }, async ({ pool }) => {
      const [a, b] = await Promise.all([pool.connect(), pool.connect()]);
      try {
        const show = async (c: typeof a) => (await c.query<{ v: string }>("SELECT current_setting('idle_in_transaction_session_timeout') AS v")).rows[0]?.v;
        return [await show(a), await show(b)];
      } finally {
        a.release();
        b.release();
      }
    });
    expect(settings).toEqual(['7s', '7s']);
  });

  it('an unreachable server: exit 1, naming the database, and the body never runs', async () => {
    const db = resolveDb({ DATABASE_URL: 'postgres://scorejob@127.0.0.1:1/nowhere' });
    let ran = false;
    const err = await withSession({ db, schema: 'scoring' }, {}, async () => {
      ran = true;
    }).catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect((err as ScorejobError).exitCode).toBe(ExitCode.runFailed);
    expect((err as Error).message).toContain('cannot connect to PostgreSQL scorejob@127.0.0.1:1/nowhere');
  });

  it('a configuration that names no database is refused before any connection (exit 2)', async () => {
    const db = resolveDb({});
    expect(db.refusal).toBeDefined();
    const err = await withSession({ db, schema: 'scoring' }, { requires: 'nothing', client: false }, async () => 'ran').catch((e: unknown) => e);
    expect((err as ScorejobError).exitCode).toBe(ExitCode.usage);
  });
});
