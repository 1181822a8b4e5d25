import { customerColumns } from '../../src/dev/synthetic.js';

/** The source key types the model-based sequences run with (docs/models.md "Source keys"). */
export type SourceKeyType = 'bigint' | 'uuid' | 'text';

/**
 * How the sequence's source `src` keys a template customer: the customer's bigint key itself, a uuid made
 * from it, or a text code (mixed case, an accent, numbers of different lengths) in an ICU collation whose
 * order is not byte order. `col` is the template customer's bigint key (SQL).
 */
export function sourceKey(keys: SourceKeyType, col: string): string {
  if (keys === 'uuid') return `md5(${col}::text)::uuid`;
  if (keys === 'text') return `((ARRAY['c-', 'C-', 'É-', 'e-'])[${col} % 4 + 1] || ${col})`;
  return col;
}

/** The columns of `src` after its key, from the template customers `c`, in order. */
export const sourceRest = customerColumns
  .slice(1)
  .map((c) => `c.${c.name}`)
  .join(', ');

/** The SQL that creates `src` from the first `n` template customers. */
export function createSourceSql(keys: SourceKeyType, n: number): string[] {
  if (keys === 'bigint') return [`CREATE TABLE src AS SELECT c.*, now() AS updated_at FROM customers c ORDER BY customer_id LIMIT ${n}`];
  return [
    `CREATE TABLE src AS SELECT ${sourceKey(keys, 'c.customer_id')} AS customer_id, ${sourceRest}, now() AS updated_at FROM customers c ORDER BY c.customer_id LIMIT ${n}`,
    ...(keys === 'text' ? [`ALTER TABLE src ALTER COLUMN customer_id TYPE text COLLATE "en-x-icu"`] : []),
  ];
}
