import type pg from 'pg';
import { quoteIdent, quoteQualified } from './sql.js';
import type { ColumnSpec, RawColumnKind } from '../columns.js';
import { keyTypeOf, type KeyType } from '../keyColumn.js';

/** A key of several columns is not supported: what to do instead (docs/models.md "Source keys"). */
export const compositeKeyAdvice =
  '; a key of several columns is not supported: read a view with one key column instead, e.g. ' +
  `SELECT tenant_id || ':' || customer_id AS customer_key, … (docs/models.md, "Source keys")`;

/** The source relation as the catalog describes it, checked against what a model reads. */
export interface SourceColumnCheck {
  /** The table as the manifest names it (`table` or `schema.table`). */
  table: string;
  /** The relation it resolves to, `schema.name`; undefined when it does not exist. */
  relation: string | undefined;
  relkind: RelationKind | undefined;
  key: KeyColumnCheck;
  columns: SourceColumn[];
  /** One line per problem that stops a run (missing relation or column, wrong type, key not unique). */
  problems: string[];
  /** Things to know that do not stop a run (e.g. uniqueness of a view's key cannot be checked). */
  notes: string[];
}

export type RelationKind = 'table' | 'partitioned table' | 'view' | 'materialized view' | 'foreign table';

export interface SourceColumn {
  name: string;
  /** How the model reads it. */
  kind: RawColumnKind;
  /** The column's SQL type (`format_type`), undefined when the column does not exist. */
  type: string | undefined;
  /** Exists, has a type the COPY reader can cast to `kind`, and can be read. */
  ok: boolean;
}

export interface KeyColumnCheck {
  name: string;
  type: string | undefined;
  /** How the key is read and stored (src/keyColumn.ts); undefined when the column is missing or cannot be a key. */
  keyType: KeyType | undefined;
  ok: boolean;
  /** Whether a primary key or unique index covers exactly the key; views and foreign tables cannot say. */
  unique: 'yes' | 'no' | 'unknown';
  /** Rows whose key is NULL (counted unless the column is NOT NULL); undefined when not counted. */
  nullKeys: number | undefined;
}

/**
 * The one line for a source with NULL keys. Refused rather than skipped or rejected: a row without a key
 * cannot be stored in score_rejects (keyed by customer) nor published, and every row must be accounted for.
 */
export function nullKeysProblem(table: string, key: string, count: number): string {
  return (
    `key column ${key} of ${table} has ${count} NULL value${count === 1 ? '' : 's'}: a row without a key can be neither scored nor rejected; ` +
    `give those rows a key or delete them (or read a view that leaves them out: WHERE ${key} IS NOT NULL)`
  );
}

/**
 * The step a newcomer misses: the manifest's `source` is what chooses the table, so a missing table is
 * most often a model not yet pointed at theirs.
 */
function pointAtYourTable(manifestFile: string | undefined): string {
  if (manifestFile === undefined) return '';
  return `; to score another table, set "source": {"table": …} in ${manifestFile}, or draft a manifest for your table with \`scorejob model init DIR --table YOUR_TABLE\``;
}

const relkinds: Record<string, RelationKind> = { r: 'table', p: 'partitioned table', v: 'view', m: 'materialized view', f: 'foreign table' };
const numericTypes = new Set(['int2', 'int4', 'int8', 'numeric', 'float4', 'float8']);
const textTypes = new Set(['text', 'varchar', 'bpchar', 'citext', 'name']);
const expected: Record<RawColumnKind, string> = { float8: 'a number', bool: 'boolean', category: 'text or an enum (a category)' };

/**
 * Reads the catalog to tell, before a run writes anything, whether the source has every column the
 * model needs with a type the reader can cast, and an integer key that is unique. Only reads the
 * catalog: names travel as parameters, so any column name is just a name.
 */
export async function checkSourceColumns(
  client: pg.ClientBase,
  source: { table: string; key: string },
  specs: readonly ColumnSpec[],
  context: { modelName?: string; manifestFile?: string } = {},
): Promise<SourceColumnCheck> {
  const { modelName, manifestFile } = context;
  const check: SourceColumnCheck = {
    table: source.table,
    relation: undefined,
    relkind: undefined,
    key: { name: source.key, type: undefined, keyType: undefined, ok: false, unique: 'unknown', nullKeys: undefined },
    columns: specs.map((s) => ({ name: s.name, kind: s.kind, type: undefined, ok: false })),
    problems: [],
    notes: [],
  };
  const rel = await findRelation(client, source.table);
  if (rel === undefined) {
    const path = source.table.includes('.') ? '' : ` (looked in search_path: ${await searchPath(client)})`;
    check.problems.push(`source table ${source.table} does not exist${path}${pointAtYourTable(manifestFile)}`);
    return check;
  }
  check.relation = rel.name;
  check.relkind = relkinds[rel.relkind];
  if (check.relkind === undefined) {
    check.problems.push(`source ${source.table} is not a table or view (relkind ${rel.relkind})`);
    return check;
  }
  const found = await readColumns(client, rel.oid, [source.key, ...specs.map((s) => s.name)]);
  const what = `${check.relkind === 'view' || check.relkind === 'materialized view' ? check.relkind : 'table'} ${source.table}`;
  const needs = modelName === undefined ? 'the model needs it' : `model ${modelName} needs it`;

  const key = found.get(source.key);
  if (key === undefined) {
    check.problems.push(`${what} has no key column ${source.key} (manifest source.key)${source.key.includes(',') ? compositeKeyAdvice : ''}`);
  } else {
    check.key.type = key.type;
    check.key.keyType = keyTypeOf(key.base);
    if (check.key.keyType === undefined)
      check.problems.push(
        `key column ${source.key} of ${source.table} is ${key.type}, expected an integer (smallint, integer, bigint), uuid or text (text, varchar) key`,
      );
    else if (!key.readable)
      check.problems.push(`cannot read key column ${source.key} of ${source.table}: ${await currentUser(client)} has no SELECT privilege on it`);
    else check.key.ok = true;
    check.key.unique = await keyUniqueness(client, rel.oid, rel.relkind, key.attnum);
    if (check.key.unique === 'no') {
      check.problems.push(
        `key column ${source.key} of ${source.table} is not unique (no primary key or unique index on exactly that column); scores are one per customer`,
      );
    } else if (check.key.unique === 'unknown') {
      check.notes.push(`${source.table} is a ${check.relkind}: whether ${source.key} is unique cannot be checked`);
    }
    if (check.key.ok && !key.notNull) {
      check.key.nullKeys = await countNullKeys(client, source);
      if (check.key.nullKeys > 0) check.problems.push(nullKeysProblem(source.table, source.key, check.key.nullKeys));
    }
  }

  for (const column of check.columns) {
    const c = found.get(column.name);
    if (c === undefined) {
      check.problems.push(`${what} has no column ${column.name} (${needs})`);
      continue;
    }
    column.type = c.type;
    if (!compatible(column.kind, c)) check.problems.push(`column ${column.name} of ${source.table} is ${c.type}, expected ${expected[column.kind]}`);
    else if (!c.readable)
      check.problems.push(`cannot read column ${column.name} of ${source.table}: ${await currentUser(client)} has no SELECT privilege on it`);
    else column.ok = true;
  }
  return check;
}

function compatible(kind: RawColumnKind, c: CatalogColumn): boolean {
  switch (kind) {
    case 'float8':
      return numericTypes.has(c.base);
    case 'bool':
      return c.base === 'bool';
    case 'category':
      return textTypes.has(c.base) || c.isEnum;
  }
}

async function findRelation(client: pg.ClientBase, table: string): Promise<{ oid: number; name: string; relkind: string } | undefined> {
  const { rows } = await client.query<{ oid: number; name: string; relkind: string }>(
    `SELECT c.oid, n.nspname || '.' || c.relname AS name, c.relkind::text AS relkind
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = pg_catalog.to_regclass($1)`,
    // Quoted ("schema"."name", or "name" resolved by the search_path) so that to_regclass takes every name literally.
    [quoteQualified(table)],
  );
  return rows[0];
}

interface CatalogColumn {
  attnum: number;
  /** format_type of the declared type, e.g. `numeric(12,2)`. */
  type: string;
  /** typname of the type, or of a domain's base type. */
  base: string;
  isEnum: boolean;
  readable: boolean;
  /** Declared NOT NULL (a primary key's column is). */
  notNull: boolean;
}

async function readColumns(client: pg.ClientBase, oid: number, names: string[]): Promise<Map<string, CatalogColumn>> {
  // A domain is checked by its base type (one level: domains over domains are rare enough).
  const { rows } = await client.query<CatalogColumn & { name: string }>(
    `SELECT a.attname AS name, a.attnum::int AS attnum, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
            b.typname::text AS base, b.typtype = 'e' AS "isEnum",
            pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT') AS readable, a.attnotnull AS "notNull"
       FROM pg_catalog.pg_attribute a
       JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
       JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
      WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY($2::text[])`,
    [oid, names],
  );
  return new Map(rows.map((r) => [r.name, r]));
}

async function keyUniqueness(client: pg.ClientBase, oid: number, relkind: string, attnum: number): Promise<KeyColumnCheck['unique']> {
  if (relkind !== 'r' && relkind !== 'p' && relkind !== 'm') return 'unknown';
  // Only a valid, non-partial unique index over exactly the key guarantees one row per key.
  const { rows } = await client.query<{ unique: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_catalog.pg_index i
        WHERE i.indrelid = $1::oid AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1
          AND i.indkey[0] = $2 AND i.indpred IS NULL AND i.indexprs IS NULL) AS unique`,
    [oid, attnum],
  );
  return rows[0]?.unique === true ? 'yes' : 'no';
}

/**
 * Rows whose key is NULL. By the key's index when it has one (btree indexes NULLs); a view is read whole,
 * once per run start: the price of knowing that no row will be silently left out.
 */
async function countNullKeys(client: pg.ClientBase, source: { table: string; key: string }): Promise<number> {
  const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteQualified(source.table)} WHERE ${quoteIdent(source.key)} IS NULL`);
  return Number(rows[0]?.n ?? 0);
}

async function searchPath(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{ path: string }>(`SELECT pg_catalog.current_setting('search_path') AS path`);
  return rows[0]?.path ?? '?';
}

async function currentUser(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{ user: string }>('SELECT current_user AS user');
  return rows[0]?.user ?? 'the current role';
}

/**
 * The key type of the source's key column (by its type, or a domain's base type), or undefined when the
 * relation or the column is missing or the type cannot be a key: the start-up check says which.
 */
export async function sourceKeyType(client: pg.ClientBase, source: { table: string; key: string }): Promise<KeyType | undefined> {
  const rel = await findRelation(client, source.table);
  if (rel === undefined) return undefined;
  const key = (await readColumns(client, rel.oid, [source.key])).get(source.key);
  return key === undefined ? undefined : keyTypeOf(key.base);
}

/** Whether the source holds any row (a run of an empty source is refused before it is created). */
export async function sourceHasRows(client: pg.ClientBase, source: { table: string }): Promise<boolean> {
  const { rows } = await client.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${quoteQualified(source.table)}) AS any`);
  return rows[0]?.any === true;
}
