import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { resolveDb, type DbConfig } from '../../src/config.js';
import { createPool, type Pool } from '../../src/db/pool.js';
import { migrate } from '../../src/db/migrate.js';
import { templateSchema } from './templateDb.js';

/** A database of its own for one test file, on the server globalSetup chose. */
export interface TestDatabase {
  name: string;
  /** Connection URL (may hold a password). */
  url: string;
  db: DbConfig;
  /** Environment for a child `scorejob` process: DATABASE_URL of this database, nothing inherited that could point elsewhere. */
  env: Record<string, string>;
  pool: Pool;
  drop(): Promise<void>;
}

export function adminUrl(): string {
  return inject('adminUrl');
}

export function urlFor(database: string, admin = adminUrl()): string {
  const url = new URL(admin);
  url.pathname = `/${database}`;
  return url.toString();
}

/**
 * Creates a database for a test file, dropped by `drop()`. Migrated (the default) for the `scoring` schema on
 * the shared server: a clone of globalSetup's migrated template. Otherwise it is created empty and, unless
 * `migrated: false`, migrated here (another schema, or a server of the test's own).
 */
export async function createTestDatabase(opts: { migrated?: boolean; schema?: string; adminUrl?: string } = {}): Promise<TestDatabase> {
  const name = `sj_test_${randomBytes(5).toString('hex')}`;
  const server = opts.adminUrl ?? adminUrl();
  const migrated = opts.migrated ?? true;
  const cloned = migrated && (opts.schema ?? templateSchema) === templateSchema && opts.adminUrl === undefined;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  try {
    const template = cloned ? ` TEMPLATE ${admin.escapeIdentifier(inject('templateDb'))}` : '';
    await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}${template}`);
  } finally {
    await admin.end();
  }
  const url = urlFor(name, server);
  const db = resolveDb({ DATABASE_URL: url });
  const pool = createPool(db, 10);
  if (migrated && !cloned) {
    const client = await pool.connect();
    try {
      await migrate(client, opts.schema ?? 'scoring');
    } finally {
      client.release();
    }
  }
  return {
    name,
    url,
    db,
    env: { DATABASE_URL: url },
    pool,
    drop: async () => {
      await pool.end().catch(() => undefined);
      if (process.env.KEEP_TEST_DATABASES) return;
      const c = new pg.Client({ connectionString: server });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
