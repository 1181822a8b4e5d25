import { join } from 'node:path';
import type pg from 'pg';
import { checkSourceColumns } from '../db/sourceColumns.js';
import { UsageError } from '../errors.js';
import type { LoadedModel } from '../model/load.js';

/** Refuses (exit 2, before anything is written) a source that lacks a column the model needs or has the wrong types. */
export async function checkSource(client: pg.ClientBase, model: LoadedModel): Promise<void> {
  const problems = await sourceProblems(client, model);
  if (problems.length > 0) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''}: see \`scorejob model inspect\`)` : '';
    throw new UsageError(`${problems[0]}${more}`);
  }
}

/** After a data error mid-run: the source problem that explains it, in the model's terms, if there is one. */
export async function explainSourceFailure(client: pg.ClientBase, model: LoadedModel): Promise<string | undefined> {
  return (await sourceProblems(client, model))[0];
}

async function sourceProblems(client: pg.ClientBase, model: LoadedModel): Promise<string[]> {
  const check = await checkSourceColumns(client, model.manifest.source, [...model.plan.columns], { manifestFile: join(model.dir, 'manifest.json') });
  return check.problems;
}
