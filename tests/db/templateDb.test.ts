import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { readMigrations, sqlDir } from '../../src/db/migrate.js';
import { adminUrl, createTestDatabase, urlFor } from '../helpers/db.js';
import { ensureTemplate, templateName } from '../helpers/templateDb.js';

/** The harness's template database (CONTRIBUTING "Test tiers"): what every migrated test database is cloned from. */
describe('the migrated template database', () => {
  const made: string[] = [];
  const databases = async (pattern: string): Promise<string[]> => {
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    try {
      return (await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY 1', [pattern])).rows.map((r) => r.datname);
    } finally {
      await admin.end();
    }
  };
  afterAll(async () => {
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    try {
      for (const name of made) {
        if ((await databases(name)).length === 0) continue;
        await admin.query(`ALTER DATABASE ${admin.escapeIdentifier(name)} WITH IS_TEMPLATE false`);
        await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)}`);
      }
    } finally {
      await admin.end();
    }
  });

  /** A copy of sql/ with one more migration: what a branch that adds a migration has. */
  async function sqlWithExtraMigration(): Promise<URL> {
    const dir = await mkdtemp(join(tmpdir(), 'sj-sql-'));
    await cp(new URL('.', sqlDir), dir, { recursive: true });
    await writeFile(join(dir, '999_template_probe.sql'), 'CREATE TABLE :SCHEMA.template_probe (id int);\n');
    return pathToFileURL(`${dir}/`);
  }

  it('a cloned test database has every migration applied and is writable', async () => {
    const t = await createTestDatabase();
    try {
      const { rows } = await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.schema_migrations');
      expect(rows[0]?.n).toBe((await readMigrations()).length);
      await t.pool.query('CREATE TABLE scoring.probe (id int)');
    } finally {
      await t.drop();
    }
  });

  it('a changed migration set gets a template of its own; two builders at once make exactly one, fully migrated', async () => {
    const dir = await sqlWithExtraMigration();
    const name = await templateName(dir);
    expect(name).not.toBe(await templateName());
    made.push(name);
    const [a, b] = await Promise.all([ensureTemplate(adminUrl(), dir), ensureTemplate(adminUrl(), dir)]);
    expect([a, b]).toEqual([name, name]);
    expect(await databases(name)).toEqual([name]);

    // Built under a scratch name and renamed once migrated: the template under its name has the extra migration.
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    const clone = `sj_test_clone_${name.slice(-8)}`;
    try {
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(clone)} TEMPLATE ${admin.escapeIdentifier(name)}`);
      const c = new pg.Client({ connectionString: urlFor(clone) });
      await c.connect();
      try {
        const { rows } = await c.query<{ v: number }>('SELECT max(version)::int v FROM scoring.schema_migrations');
        expect(rows[0]?.v).toBe(999);
        await c.query('SELECT * FROM scoring.template_probe');
      } finally {
        await c.end();
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(clone)} WITH (FORCE)`);
      await admin.end();
    }
  });
});
