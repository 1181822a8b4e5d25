/**
 * The bench's uuid-keyed subject (`npm run bench -- --tables customers,customers_uuid`): the same synthetic
 * customers as `customers`, keyed by a uuid (md5 of the bigint key), scored by the shipped model into a
 * schema of its own (a schema holds one key type), so the two tables' A figures compare bigint and uuid
 * keys on the same rows in one sitting.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { migrate } from '../src/db/migrate.js';
import { customerColumns } from '../src/dev/synthetic.js';

export const uuidTable = 'customers_uuid';
export const uuidSchema = 'scoring_uuid';
const uuidMark = (n: number) => `scorejob bench: the ${n} synthetic customers keyed by uuid, v1`;

/** Creates customers_uuid from customers (when absent or of another size), its schema, and the model reading it. */
export async function prepareUuidSubject(
  pool: pg.Pool,
  customers: number,
  shippedModel: string,
  out: string,
): Promise<{ modelDir: string; extraArgs: string[] }> {
  const client = await pool.connect();
  try {
    const { rows } = await client.query<{ mark: string | null }>(`SELECT obj_description(to_regclass($1), 'pg_class') AS mark`, [uuidTable]);
    if (rows[0]?.mark !== uuidMark(customers)) {
      const rest = customerColumns.slice(1).map((c) => `c.${c.name}`);
      await client.query(`DROP TABLE IF EXISTS ${uuidTable}`);
      await client.query(`CREATE TABLE ${uuidTable} AS SELECT md5(c.customer_id::text)::uuid AS customer_id, ${rest.join(', ')} FROM customers c`);
      await client.query(`ALTER TABLE ${uuidTable} ADD PRIMARY KEY (customer_id)`);
      await client.query(`VACUUM ANALYZE ${uuidTable}`);
      await client.query(`COMMENT ON TABLE ${uuidTable} IS '${uuidMark(customers)}'`);
    }
    await migrate(client, uuidSchema);
  } finally {
    client.release();
  }
  const modelDir = join(out, 'models', 'customer-value-uuid');
  await cp(shippedModel, modelDir, { recursive: true });
  const file = join(modelDir, 'manifest.json');
  const manifest = JSON.parse(await readFile(file, 'utf8')) as { source?: Record<string, unknown> };
  manifest.source = { ...manifest.source, table: uuidTable, key: 'customer_id' };
  await writeFile(file, JSON.stringify(manifest, null, 2));
  return { modelDir, extraArgs: ['--schema', uuidSchema] };
}

/** The figures of a table's A side the comparison reads (bench.ts TableResults). */
interface KeyFigures {
  job: { rowsPerSecond: { median: number }; jobRowsPerSecond: { median: number }; peakRssMb: { max: number } };
}

/** With both customers and customers_uuid measured: uuid keys against bigint keys on the same rows. */
export function keyComparison(tables: Partial<Record<string, KeyFigures>>): { line: string; figures: Record<string, number> } | undefined {
  const big = tables.customers;
  const uuid = tables.customers_uuid;
  if (!big || !uuid) return undefined;
  const figures = {
    rowsPerSecondRatio: uuid.job.rowsPerSecond.median / big.job.rowsPerSecond.median,
    jobRowsPerSecondRatio: uuid.job.jobRowsPerSecond.median / big.job.jobRowsPerSecond.median,
    peakRssMbBigint: big.job.peakRssMb.max,
    peakRssMbUuid: uuid.job.peakRssMb.max,
  };
  const line =
    `uuid keys / bigint keys (A, median rows/s): ${figures.rowsPerSecondRatio.toFixed(2)} (run's own clock ${figures.jobRowsPerSecondRatio.toFixed(2)}); ` +
    `peak RSS ${figures.peakRssMbUuid.toFixed(0)} MB against ${figures.peakRssMbBigint.toFixed(0)} MB`;
  return { line, figures };
}
