import type pg from 'pg';
import { keySqlType, type KeyType } from '../keyColumn.js';
import { quoteIdent } from '../db/sql.js';

/** customer_id's SQL type in a schema of each key type (sql/022_keys.sql set_key_type). */
const schemaTypeOf: Record<KeyType, string> = { int8: 'bigint', uuid: 'uuid', text: 'text' };

/** What a schema's key type said to a run's source key type. */
export type KeyTypeFit = { fits: true; changed: boolean } | { fits: false; schemaType: string };

/**
 * One key type per schema: customer_id of its score tables and reader views has the type of the source
 * key, so a downstream join on the source's key needs no cast. The schema takes the key type of the
 * first run it holds (set_key_type, in the caller's transaction); afterwards a source keyed otherwise
 * does not fit (the caller refuses it, naming --schema).
 */
export async function fitKeyType(c: pg.ClientBase, schema: string, keyType: KeyType): Promise<KeyTypeFit> {
  const now = await schemaKeyType(c, schema);
  if (now === schemaTypeOf[keyType]) return { fits: true, changed: false };
  const { rows } = await c.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${quoteIdent(schema)}.score_runs) AS any`);
  if (rows[0]?.any === true) return { fits: false, schemaType: now };
  await c.query(`SELECT ${quoteIdent(schema)}.set_key_type($1)`, [schemaTypeOf[keyType]]);
  return { fits: true, changed: true };
}

/** customer_id's type in the schema's score tables: bigint, uuid or text. */
export async function schemaKeyType(c: pg.ClientBase, schema: string): Promise<string> {
  const { rows } = await c.query<{ t: string }>(
    `SELECT format_type(a.atttypid, a.atttypmod) AS t FROM pg_catalog.pg_attribute a
      WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attname = 'customer_id'`,
    [`${quoteIdent(schema)}.score_data`],
  );
  return rows[0]?.t ?? 'bigint';
}

/** The key type of a schema whose customer_id has this SQL type. */
export function keyTypeOfSchema(sqlType: string): KeyType {
  return sqlType === 'uuid' ? 'uuid' : sqlType === 'text' ? 'text' : 'int8';
}

export { keySqlType };
