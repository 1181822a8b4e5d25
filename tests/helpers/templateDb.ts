import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate, readMigrations, sqlDir } from '../../src/db/migrate.js';
import { quoteIdent } from '../../src/db/sql.js';

/** The schema the template is migrated for: the default one, which almost every test file uses. */
export const templateSchema = 'scoring';

/** Advisory lock class for building templates; any number distinct from the job's own lock classes. */
const templateLockClass = 0x5c0c;

/**
 * Name of the migrated template for this checkout's migrations: a hash of the migration files, so a changed
 * or added migration gets a template of its own (another checkout sharing the server keeps using its own).
 */
export async function templateName(dir: URL = sqlDir): Promise<string> {
  const hash = createHash('sha256').update(templateSchema);
  for (const f of await readMigrations(dir)) hash.update(`\0${f.name}\0${f.checksum}`);
  return `sj_template_${hash.digest('hex').slice(0, 16)}`;
}

function urlOf(admin: string, database: string): string {
  const url = new URL(admin);
  url.pathname = `/${database}`;
  return url.toString();
}

/**
 * Makes sure the server at `adminUrl` has the migrated template (built once per server and migration set)
 * and returns its name. Test files clone it with `CREATE DATABASE … TEMPLATE`, which copies files instead of
 * replaying every migration.
 *
 * Two vitest processes may share a server: the first builds while holding an advisory lock, the other waits
 * on it and then finds the template. The template is built under a scratch name and renamed only once fully
 * migrated, so a build that died half-way never leaves a half-migrated template behind. It refuses
 * connections, because a clone fails while anyone is connected to its source.
 */
export async function ensureTemplate(adminUrl: string, dir: URL = sqlDir): Promise<string> {
  const name = await templateName(dir);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query('SELECT pg_advisory_lock($1, hashtext($2))', [templateLockClass, name]);
    const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) await buildTemplate(admin, { adminUrl, name, dir });
    return name;
  } finally {
    await admin.end().catch(() => undefined);
  }
}

async function buildTemplate(admin: pg.Client, { adminUrl, name, dir }: { adminUrl: string; name: string; dir: URL }): Promise<void> {
  const scratch = `sj_template_build_${randomBytes(5).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${quoteIdent(scratch)}`);
  try {
    const client = new pg.Client({ connectionString: urlOf(adminUrl, scratch) });
    await client.connect();
    try {
      await migrate(client, templateSchema, dir);
    } finally {
      await client.end();
    }
    await admin.query(`ALTER DATABASE ${quoteIdent(scratch)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`);
    await admin.query(`ALTER DATABASE ${quoteIdent(scratch)} RENAME TO ${quoteIdent(name)}`);
  } catch (err) {
    await admin.query(`ALTER DATABASE ${quoteIdent(scratch)} WITH IS_TEMPLATE false`).catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(scratch)} WITH (FORCE)`).catch(() => undefined);
    throw err;
  }
}
