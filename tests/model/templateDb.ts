import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { resolveDb } from '../../src/config.js';
import { createPool } from '../../src/db/pool.js';
import { adminUrl, urlFor, type TestDatabase } from '../helpers/db.js';

/**
 * The model-based tests' databases: one template, built once per test file, then one clone of it per
 * sequence (`CREATE DATABASE … TEMPLATE`, a file copy, far cheaper than migrating and scoring the first
 * run again). Every clone runs with synchronous_commit off: no sequence crashes the server, and a commit
 * that waits for no flush changes nothing a reader of a running server sees.
 */
export interface TemplateDb {
  /** The template while it is being built (its pool ends in {@link TemplateDb.freeze}). */
  t: TestDatabase;
  /** Ends every connection to the template: from then on it can be cloned. */
  freeze(): Promise<void>;
  /** A new database, a copy of the template (made while the previous sequence ran). */
  clone(): Promise<TestDatabase>;
  /** Drops a clone in the background, off the next sequence's path; drop() waits for it. */
  discard(clone: TestDatabase): void;
  /** Drops the clones not dropped yet, then the template. */
  drop(): Promise<void>;
}

async function onServer<T>(server: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: server });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function database(server: string, name: string, template?: string): Promise<TestDatabase> {
  await onServer(server, async (c) => {
    const id = c.escapeIdentifier(name);
    await c.query(`CREATE DATABASE ${id}${template === undefined ? '' : ` TEMPLATE ${c.escapeIdentifier(template)}`}`);
    await c.query(`ALTER DATABASE ${id} SET synchronous_commit = off`);
  });
  const url = urlFor(name, server);
  const db = resolveDb({ DATABASE_URL: url });
  const pool = createPool(db, 10);
  return {
    name,
    url,
    db,
    env: { DATABASE_URL: url },
    pool,
    drop: async () => {
      await pool.end().catch(() => undefined);
      if (process.env.KEEP_TEST_DATABASES) return;
      await onServer(server, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`));
    },
  };
}

export async function createTemplateDb(): Promise<TemplateDb> {
  const server = adminUrl();
  const name = `sj_model_tpl_${randomBytes(4).toString('hex')}`;
  const t = await database(server, name);
  let clones = 0;
  const make = () => database(server, `${name}_${++clones}`, name);
  // One clone is made ahead; drops run one at a time (each waits on the server's own work), never on a sequence's path.
  const spares: Promise<TestDatabase>[] = [];
  let drops: Promise<unknown> = Promise.resolve();
  const safely = (p: Promise<TestDatabase>) => (p.catch(() => undefined), p);
  return {
    t,
    freeze: () => t.pool.end(),
    clone: async () => {
      const next = spares.shift() ?? safely(make());
      spares.push(safely(make()));
      return next;
    },
    discard: (clone) => {
      drops = drops.then(() => clone.drop()).catch(() => undefined);
    },
    drop: async () => {
      await drops;
      for (const spare of spares.splice(0)) await (await spare.catch(() => undefined))?.drop();
      await t.drop();
    },
  };
}
