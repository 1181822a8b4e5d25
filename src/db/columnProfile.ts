import type pg from 'pg';
import { UsageError } from '../errors.js';
import { quoteIdent, quoteQualified } from './sql.js';

/** What `scorejob model init` learns about a table's columns, all computed in PostgreSQL. */
export interface TableProfile {
  /** As given (`table` or `schema.table`). */
  table: string;
  /** `schema.name` it resolved to. */
  relation: string;
  key: string;
  rows: number;
  /** In the order asked for (or table order). */
  columns: ColumnProfile[];
  /** Columns left out, with why (a type scorejob cannot read as a feature). */
  skipped: { name: string; type: string }[];
}

export type ColumnProfile = NumberProfile | BooleanProfile | TextProfile;

interface ProfileBase {
  name: string;
  /** format_type of the column. */
  type: string;
  nulls: number;
}

/**
 * avg, stddev_pop, min, max over the values a float32 model input can hold: NaN, ±Infinity and finite
 * values beyond float32's range are left out, and counted apart.
 */
export interface NumberProfile extends ProfileBase {
  kind: 'number';
  mean: number | null;
  std: number | null;
  min: number | null;
  max: number | null;
  nonFinite: number;
  /** Finite values with |value| > 3.4e38 (float8 1e300, numeric 1e400). */
  beyondFloat32: number;
}

/** float32's largest finite value: the model's inputs are float32, so nothing larger can be scored. */
const float32Max = '3.4028234663852886e38';

export interface BooleanProfile extends ProfileBase {
  kind: 'boolean';
  trues: number;
  falses: number;
}

export interface TextProfile extends ProfileBase {
  kind: 'text';
  /** Most frequent first (ties by value), at most `maxCategories`. */
  categories: { value: string; count: number }[];
  /** More distinct values exist than `categories` holds. */
  truncated: boolean;
}

const numberTypes = new Set(['int2', 'int4', 'int8', 'float4', 'float8', 'numeric']);
const floatTypes = new Set(['float4', 'float8', 'numeric']);
const textTypes = new Set(['text', 'varchar', 'bpchar', 'name', 'citext']);

export interface ProfileOptions {
  /** Default: the single-column primary key. */
  key?: string | undefined;
  /** Default: every column but the key. */
  columns?: readonly string[] | undefined;
  maxCategories: number;
}

/**
 * Profiles a table in one aggregate scan for counts and numeric statistics, plus one GROUP BY per text
 * column for its most frequent values: PostgreSQL does the work, so 10M rows cost a few scans and no
 * rows cross the wire.
 */
export async function profileColumns(client: pg.ClientBase, table: string, opts: ProfileOptions): Promise<TableProfile> {
  const { rows: rel } = await client.query<{ oid: number; name: string }>(
    `SELECT c.oid, n.nspname || '.' || c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = pg_catalog.to_regclass($1)`,
    [quoteQualified(table)],
  );
  const relation = rel[0];
  if (relation === undefined) throw new UsageError(`--table ${table}: no such table or view (is the search_path right? name it schema.table)`);
  const catalog = await readCatalog(client, relation.oid);
  const key = opts.key ?? (await primaryKey(client, relation.oid));
  if (key === undefined) throw new UsageError(`--table ${table} has no single-column primary key; name the key column (integer, uuid or text) with --key`);
  if (!catalog.has(key)) throw new UsageError(`--key ${key}: ${table} has no such column`);
  const names = opts.columns ?? [...catalog.keys()].filter((n) => n !== key);
  const wanted: { name: string; type: string; kind: ColumnProfile['kind'] | undefined; float: boolean }[] = [];
  for (const name of names) {
    const c = catalog.get(name);
    if (c === undefined) throw new UsageError(`--columns: ${table} has no column ${name}`);
    const kind = numberTypes.has(c.base) ? 'number' : c.base === 'bool' ? 'boolean' : textTypes.has(c.base) || c.isEnum ? 'text' : undefined;
    wanted.push({ name, type: c.type, kind, float: floatTypes.has(c.base) });
  }
  const readable = wanted.filter((w) => w.kind !== undefined);
  const skipped = wanted.filter((w) => w.kind === undefined).map(({ name, type }) => ({ name, type }));
  const from = quoteQualified(table);
  const exprs = ['count(*)::float8 AS n'];
  readable.forEach((w, i) => {
    const c = quoteIdent(w.name);
    exprs.push(`(count(*) - count(${c}))::float8 AS nulls_${i}`);
    if (w.kind === 'number') {
      // NaN and ±Infinity would make every statistic NaN or infinite, and a float8 1e300 overflows
      // stddev_pop's sum of squares (a numeric 1e400 the cast to float8): all left out, counted apart.
      // abs(NaN) sorts above every number in PostgreSQL, so the one bound leaves out all three.
      const usable = w.float ? ` FILTER (WHERE abs(${c}) <= ${float32Max})` : '';
      const nonFinite = `${c} IN ('NaN', 'Infinity', '-Infinity')`;
      exprs.push(
        `avg(${c})${usable}::float8 AS mean_${i}`,
        `stddev_pop(${c})${usable}::float8 AS std_${i}`,
        `min(${c})${usable}::float8 AS min_${i}`,
        `max(${c})${usable}::float8 AS max_${i}`,
      );
      exprs.push(w.float ? `count(*) FILTER (WHERE ${nonFinite})::float8 AS nonfinite_${i}` : `0::float8 AS nonfinite_${i}`);
      exprs.push(w.float ? `count(*) FILTER (WHERE abs(${c}) > ${float32Max} AND NOT ${nonFinite})::float8 AS beyond_${i}` : `0::float8 AS beyond_${i}`);
    } else if (w.kind === 'boolean') {
      exprs.push(`count(*) FILTER (WHERE ${c})::float8 AS trues_${i}`, `count(*) FILTER (WHERE NOT ${c})::float8 AS falses_${i}`);
    }
  });
  const { rows } = await client.query<Record<string, number | null>>(`SELECT ${exprs.join(', ')} FROM ${from}`);
  const agg = rows[0]!;
  const columns: ColumnProfile[] = [];
  for (const [i, w] of readable.entries()) {
    const base = { name: w.name, type: w.type, nulls: agg[`nulls_${i}`] as number };
    if (w.kind === 'number') {
      columns.push({
        ...base,
        kind: 'number',
        mean: agg[`mean_${i}`] ?? null,
        std: agg[`std_${i}`] ?? null,
        min: agg[`min_${i}`] ?? null,
        max: agg[`max_${i}`] ?? null,
        nonFinite: agg[`nonfinite_${i}`] as number,
        beyondFloat32: agg[`beyond_${i}`] as number,
      });
    } else if (w.kind === 'boolean') {
      columns.push({ ...base, kind: 'boolean', trues: agg[`trues_${i}`] as number, falses: agg[`falses_${i}`] as number });
    } else {
      const c = quoteIdent(w.name);
      const { rows: top } = await client.query<{ value: string; count: number }>(
        `SELECT ${c}::text AS value, count(*)::float8 AS count FROM ${from} WHERE ${c} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1`,
        [opts.maxCategories + 1],
      );
      columns.push({ ...base, kind: 'text', categories: top.slice(0, opts.maxCategories), truncated: top.length > opts.maxCategories });
    }
  }
  return { table, relation: relation.name, key, rows: agg.n as number, columns, skipped };
}

interface CatalogColumn {
  type: string;
  base: string;
  isEnum: boolean;
}

/** Every column in table order, with its type (a domain by its base type). */
async function readCatalog(client: pg.ClientBase, oid: number): Promise<Map<string, CatalogColumn>> {
  const { rows } = await client.query<CatalogColumn & { name: string }>(
    `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, b.typname::text AS base, b.typtype = 'e' AS "isEnum"
       FROM pg_catalog.pg_attribute a
       JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
       JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
      WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [oid],
  );
  return new Map(rows.map((r) => [r.name, r]));
}

async function primaryKey(client: pg.ClientBase, oid: number): Promise<string | undefined> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT a.attname AS name FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
      WHERE i.indrelid = $1::oid AND i.indisprimary AND i.indnkeyatts = 1`,
    [oid],
  );
  return rows[0]?.name;
}
