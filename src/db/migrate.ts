import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import type pg from 'pg';
import { MigrationError, UsageError } from '../errors.js';
import { databaseOf } from './pool.js';
import { quoteIdent, withTransaction } from './sql.js';
import { SqlState, sqlStateOf } from './sqlstate.js';

/**
 * Folder of the forward-only migrations `NNN_name.sql`, next to `src/` and `dist/`.
 * @internal exported for tests
 */
export const sqlDir = new URL('../../sql/', import.meta.url);

/** Advisory lock namespace for migrations; the run lock uses another (see run/lock.ts). */
const migrateLockClass = 0x5c0b;

export interface MigrationFile {
  version: number;
  name: string;
  checksum: string;
  sql: string;
}

export interface MigrationStep {
  version: number;
  name: string;
  /** `applied` now, or `unchanged` because an earlier migrate applied it. */
  outcome: 'applied' | 'unchanged';
}

/** The migration files, in order. */
export async function readMigrations(dir: URL = sqlDir): Promise<MigrationFile[]> {
  const names = (await readdir(dir)).filter((n) => /^\d{3}_[a-z0-9_]+\.sql$/.test(n)).sort();
  const files: MigrationFile[] = [];
  for (const name of names) {
    const sql = await readFile(new URL(name, dir), 'utf8');
    files.push({ version: Number(name.slice(0, 3)), name, checksum: sha256(sql), sql });
  }
  return files;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Creates or upgrades the schema: each pending file in its own transaction, recorded with its checksum.
 * A session advisory lock makes concurrent migrates wait for each other; the second finds nothing to do.
 */
export async function migrate(client: pg.ClientBase, schema: string, dir: URL = sqlDir): Promise<MigrationStep[]> {
  const files = await readMigrations(dir);
  const ident = quoteIdent(schema);
  await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [migrateLockClass, schema]);
  try {
    // CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database; a least-privilege job role
    // (sql/roles.sql) owns a schema an administrator made, so only create it when it is missing.
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (exists.rowCount === 0) {
      try {
        await client.query(`CREATE SCHEMA ${ident}`);
      } catch (err) {
        if (sqlStateOf(err) === SqlState.insufficientPrivilege) {
          throw new UsageError(
            `cannot create schema "${schema}": this role may not create schemas in database ${databaseOf(client)}; have an administrator run sql/roles.sql (it creates the schema owned by the job's role)`,
            { cause: err },
          );
        }
        throw err;
      }
    }
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${ident}.schema_migrations (
         version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const applied = await appliedMigrations(client, ident);
    checkApplied(applied, files, `schema "${schema}" of database ${databaseOf(client)}`);
    const steps: MigrationStep[] = [];
    for (const file of files) {
      if (applied.has(file.version)) {
        steps.push({ version: file.version, name: file.name, outcome: 'unchanged' });
        continue;
      }
      try {
        await withTransaction(client, async () => {
          await client.query(file.sql.replaceAll(':SCHEMA', ident));
          await client.query(`INSERT INTO ${ident}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`, [file.version, file.name, file.checksum]);
        });
      } catch (err) {
        throw new MigrationError(`migration ${file.name} failed: ${(err as Error).message}`, { cause: err });
      }
      steps.push({ version: file.version, name: file.name, outcome: 'applied' });
    }
    return steps;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [migrateLockClass, schema]).catch(() => undefined);
  }
}

async function appliedMigrations(client: pg.ClientBase, ident: string): Promise<Map<number, { name: string; checksum: string }>> {
  const { rows } = await client.query<{ version: number; name: string; checksum: string }>(
    `SELECT version, name, checksum FROM ${ident}.schema_migrations ORDER BY version`,
  );
  return new Map(rows.map((r) => [r.version, { name: r.name, checksum: r.checksum }]));
}

/** `where`: the schema and its database, as the messages name them. */
function checkApplied(applied: Map<number, { name: string; checksum: string }>, files: MigrationFile[], where: string): void {
  const known = new Map(files.map((f) => [f.version, f]));
  for (const [version, row] of applied) {
    const file = known.get(version);
    if (!file) {
      throw new UsageError(
        `${where} was migrated by a newer scorejob (it has migration ${row.name}, unknown to this version); upgrade scorejob instead of downgrading the schema`,
      );
    }
    if (file.checksum !== row.checksum) {
      throw new UsageError(`sql/${file.name} was edited after it was applied to ${where} (checksum differs); restore the file and add a new migration instead`);
    }
  }
}

/**
 * Refuses to work on a database that `scorejob migrate` has not brought to this version (exit 2),
 * or that a newer scorejob has migrated past it. Each refusal names the database: advice to migrate
 * must not send anyone to migrate a database the job reached by mistake.
 */
export async function assertMigrated(client: pg.ClientBase, schema: string): Promise<void> {
  const where = databaseOf(client);
  const files = await readMigrations();
  const latest = files.at(-1)?.version ?? 0;
  let current: number;
  let applied: Set<number>;
  try {
    const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${quoteIdent(schema)}.schema_migrations`);
    applied = new Set(rows.map((r) => Number(r.version)));
    current = Math.max(0, ...applied);
  } catch (err) {
    const state = sqlStateOf(err);
    if (state === SqlState.undefinedTable || state === SqlState.invalidSchemaName) {
      throw new UsageError(
        `database ${where} is not migrated for scorejob (schema "${schema}" is missing): if this is the right database, run \`scorejob migrate\``,
      );
    }
    if (state === SqlState.insufficientPrivilege) {
      throw new UsageError(
        `database ${where}: this role has no rights on schema "${schema}" (${(err as Error).message}); the job's role must own it: see sql/roles.sql`,
        { cause: err },
      );
    }
    throw err;
  }
  // A migration added below the latest applied one (two branches released together) is missing too.
  const missing = files.filter((f) => f.version < current && !applied.has(f.version));
  if (missing.length > 0) {
    throw new UsageError(`database ${where}: schema "${schema}" lacks migration ${missing.map((f) => f.name).join(', ')}: run \`scorejob migrate\``);
  }
  if (current < latest) {
    throw new UsageError(`database ${where}: schema "${schema}" is at version ${current}, this scorejob needs ${latest}: run \`scorejob migrate\``);
  }
  if (current > latest) {
    throw new UsageError(
      `database ${where}: schema "${schema}" is at version ${current}, newer than this scorejob (${latest}); upgrade scorejob instead of downgrading the schema`,
    );
  }
}
