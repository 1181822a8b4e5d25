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
