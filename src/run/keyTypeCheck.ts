import type pg from 'pg';
import type { RunOptions } from '../config.js';
import type { SourceRef } from '../db/copyReader.js';
import { sourceKeyType } from '../db/sourceColumns.js';
import { withTransaction } from '../db/sql.js';
import { UsageError } from '../errors.js';
import type { KeyType } from '../keyColumn.js';
import { fitKeyType } from '../ledger/keyTypes.js';

/** Run options not supported yet with uuid and text keys, and the flag that asks for each. */
const notYetForKeys: [keyof RunOptions, string][] = [['minAuc', '--min-auc']];

/**
 * The source's key type, checked before the run is created: options not supported yet with uuid or text
 * keys are refused (one line naming the flag), and the schema must hold keys of that type, or take it
 * now while it holds no run (src/ledger/keyTypes.ts); otherwise the model needs a schema of its own.
 */
export async function checkRunKeyType(
  client: pg.ClientBase,
  schema: string,
  source: SourceRef,
  opts: Readonly<RunOptions>,
  modelName: string,
): Promise<KeyType> {
  const keyType = (await sourceKeyType(client, source)) ?? 'int8';
  if (keyType !== 'int8') {
    for (const [option, flag] of notYetForKeys) {
      if (opts[option] !== undefined && opts[option] !== false)
        throw new UsageError(`${flag} is not supported yet with ${keyType} keys (key ${source.key} of ${source.table}); run without ${flag}`);
    }
  }
  const fit = await withTransaction(client, (c) => fitKeyType(c, schema, keyType));
  if (!fit.fits) {
    throw new UsageError(
      `model ${modelName} reads ${keyType === 'int8' ? 'integer' : keyType} keys (${source.key} of ${source.table}) but schema ${schema} holds ${fit.schemaType} keys: ` +
        `give the model a schema of its own with --schema NAME (after \`scorejob migrate --schema NAME\`)`,
    );
  }
  return keyType;
}
