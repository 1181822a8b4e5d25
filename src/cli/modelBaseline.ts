import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Command } from 'commander';
import { describeDb } from '../config.js';
import { withSession } from '../db/session.js';
import { SqlState, sqlStateOf } from '../db/sqlstate.js';
import { UsageError } from '../errors.js';
import { computeBaseline, writeBaseline } from '../features/feature-drift/baseline.js';
import { parseManifest } from '../model/manifest.js';
import { action } from './action.js';

/** Adds `scorejob model baseline DIR --table T [--where SQL]` to the `model` command. */
export function addModelBaselineCommand(model: Command): void {
  model
    .command('baseline')
    .description(
      'store the training distribution of each manifest feature in DIR/baseline.json (decile bins for numbers, shares for categories; NULL as its own bin), for per-feature drift',
    )
    .argument('<dir>', 'model directory holding manifest.json')
    .requiredOption('--table <table>', 'the table or view the model was trained on (table or schema.table)')
    .option('--where <sql>', 'only the training rows, e.g. "snapshot_month = \'2026-06\'"')
    .action(
      action(
        async (ctx, dir: string, cmd: Command) => {
          const flags = cmd.opts<{ table: string; where?: string }>();
          const file = join(dir, 'manifest.json');
          const text = await readFile(file, 'utf8').catch(() => {
            throw new UsageError(
              `${file} cannot be read: \`scorejob model baseline\` needs the model's manifest (draft one with \`scorejob model init ${dir} --table T\`)`,
            );
          });
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch (err) {
            throw new UsageError(`${file} is not valid JSON: ${(err as Error).message}`);
          }
          const manifest = parseManifest(json, file);
          const where = describeDb(ctx.config.db);
          const baseline = await withSession(ctx.config, { requires: 'reachable' }, ({ client }) =>
            computeBaseline(client, manifest, { table: flags.table, where: flags.where }).catch((err: unknown) => {
              const state = sqlStateOf(err);
              if (state === SqlState.undefinedTable || state === SqlState.undefinedColumn || state?.startsWith('42')) {
                throw new UsageError(`--table ${flags.table}${flags.where ? ` --where ${flags.where}` : ''} on ${where}: ${(err as Error).message}`, {
                  cause: err,
                });
              }
              throw err;
            }),
          );
          if (baseline.rows === 0)
            throw new UsageError(
              `--table ${flags.table}${flags.where ? ` --where ${flags.where}` : ''} has no rows on ${where}: nothing to take a distribution of`,
            );
          const out = await writeBaseline(dir, baseline);
          process.stdout.write(
            `wrote ${out}: ${baseline.features.length} features from ${baseline.rows} rows of ${flags.table} on ${where} (not part of the model's sha256: a run's model stays the same)\n`,
          );
        },
        { quiet: true },
      ),
    );
}
