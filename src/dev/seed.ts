import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import { databaseOf, type Pool, type PoolClient } from '../db/pool.js';
import { defaults } from '../config.js';
import { quoteIdent, quoteQualified, withClient, withTransaction } from '../db/sql.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { copyTextBlocks, customerColumns, defaultNullFraction } from './synthetic.js';

/** Options of `scorejob seed`. */
export interface SeedOptions {
  /** Number of customers to generate (`--customers`), a whole number ≥ 0. */
  customers: number;
  /** PRNG seed (`--seed`); the same seed gives the same table. Default 1. */
  seed?: number;
  /** Share of NULLs in each nullable column (`--null-fraction`), in [0, 1]. Default 0.02. */
  nullFraction?: number;
  /** Table to create, `table` or `schema.table`. Default `customers`. */
  table?: string;
  /** `--replace`: replace the table if an earlier seed created it. A table seed did not create is never replaced. */
  replace?: boolean;
  log?: Logger;
}

/** What a seed did. */
export interface SeedResult {
  /** The table as given (unquoted). */
  table: string;
  rows: number;
  /** Wall time of the whole seed, load, key and ANALYZE included. */
  ms: number;
}

export const defaultSeed = defaults.seed;

/**
 * The comment seed puts on the tables it creates: the mark that lets a later seed (with `--replace`)
 * tell its own table from someone's data. `scorejob bench:` marks tables older benchmarks seeded.
 */
export function seedComment(o: { customers: number; seed: number; nullFraction: number }): string {
  return `scorejob seed: ${o.customers} synthetic customers, seed ${o.seed}, null fraction ${o.nullFraction}`;
}
const seededMark = /^scorejob (seed|bench):/;

/**
 * Creates `opts.table` with `opts.customers` deterministic synthetic customers; replaces it only when an
 * earlier seed created it and `opts.replace` says so.
 *
 * Check, drop, create, load, key and ANALYZE happen in one transaction, so a reader sees the old table or
 * the complete new one. The load is `COPY ... FREEZE` (rows are written already frozen, no later hint-bit
 * rewrite) and the primary key is built once after the load, which is far cheaper than maintaining it
 * row by row.
 */
export async function seedCustomers(pool: Pool, opts: SeedOptions): Promise<SeedResult> {
  const started = performance.now();
  const { customers, seed, nullFraction, table, replace } = validate(opts);
  await withClient(pool, async (client) => {
    const target = quoteQualified(table);
    const columns = customerColumns.map((c) => quoteIdent(c.name));
    const definitions = customerColumns.map((c, i) => `${columns[i]} ${c.type}`);
    await withTransaction(client, async () => {
      if (await checkExisting(client, table, replace)) await client.query(`DROP TABLE ${target}`);
      await client.query(`CREATE TABLE ${target} (${definitions.join(', ')})`);
      // COMMENT takes no $n parameter: the text (numbers we generated) goes through pg's literal quoting.
      await client.query(`COMMENT ON TABLE ${target} IS ${client.escapeLiteral(seedComment({ customers, seed, nullFraction }))}`);
      const blocks = copyTextBlocks({ count: customers, seed, nullFraction });
      // pipeline() ends the COPY on success and sends CopyFail on any error, so a failed load rolls back.
      await pipeline(Readable.from(latin1Buffers(blocks)), client.query(copyFrom(`COPY ${target} (${columns.join(', ')}) FROM STDIN WITH (FREEZE)`)));
      await client.query(`ALTER TABLE ${target} ADD PRIMARY KEY (${columns[0]})`);
      await client.query(`ANALYZE ${target}`);
    });
  });
  const ms = Math.round(performance.now() - started);
  opts.log?.info(
    { table, rows: customers, seed, null_fraction: nullFraction, ms, rows_per_s: ms > 0 ? Math.round((customers * 1000) / ms) : undefined },
    'seeded customers',
  );
  return { table, rows: customers, ms };
}

const relationKinds: Record<string, string> = { r: 'table', p: 'table', v: 'view', m: 'materialized view', f: 'foreign table' };

/**
 * Whether `table` exists and may be dropped: only a table an earlier seed created (its comment carries
 * the mark), and only when told to replace it. Anything else there is refused (exit 2), untouched.
 * The table is locked before the drop, so that a seed running at the same time waits for this one's outcome.
 */
export async function checkExisting(client: PoolClient, table: string, replace: boolean): Promise<boolean> {
  const { rows } = await client.query<{ kind: string; mark: string | null }>(
    `SELECT c.relkind AS kind, obj_description(c.oid, 'pg_class') AS mark FROM pg_class c WHERE c.oid = to_regclass($1)`,
    [quoteQualified(table)],
  );
  const found = rows[0];
  if (!found) return false;
  const kind = relationKinds[found.kind] ?? 'relation';
  if (kind !== 'table' || !seededMark.test(found.mark ?? '')) {
    throw new UsageError(
      `${kind} ${table} in database ${databaseOf(client)} was not created by scorejob seed: seed never replaces or changes it; seed a synthetic table beside it with --table NAME (a new name), or point the job at a database of its own`,
    );
  }
  if (!replace) {
    const count = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteQualified(table)}`);
    throw new UsageError(
      `table ${table} in database ${databaseOf(client)} already holds customers seeded by scorejob seed (${count.rows[0]?.n ?? '?'} rows): pass --replace to replace them`,
    );
  }
  await client.query(`LOCK TABLE ${quoteQualified(table)} IN ACCESS EXCLUSIVE MODE`);
  return true;
}

function validate(opts: SeedOptions): Required<Omit<SeedOptions, 'log'>> {
  const { customers, seed = defaultSeed, nullFraction = defaultNullFraction, table = defaults.seedTable, replace = false } = opts;
  if (!Number.isSafeInteger(customers) || customers < 0) {
    throw new UsageError(`--customers: "${customers}" is not a whole number ≥ 0`);
  }
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new UsageError(`--seed: "${seed}" is not a whole number between 0 and ${0xffff_ffff}`);
  }
  if (!Number.isFinite(nullFraction) || nullFraction < 0 || nullFraction > 1) {
    throw new UsageError(`--null-fraction: "${nullFraction}" is not a number between 0 and 1`);
  }
  if (table === '' || table.startsWith('.') || table.endsWith('.')) {
    throw new UsageError(`table: "${table}" is not a table name (table or schema.table)`);
  }
  return { customers, seed, nullFraction, table, replace };
}

/** The COPY text is ASCII, so latin1 is the cheapest correct encoding into bytes. */
function* latin1Buffers(blocks: Iterable<string>): Generator<Buffer> {
  for (const block of blocks) yield Buffer.from(block, 'latin1');
}
