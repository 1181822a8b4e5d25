import { type Command } from 'commander';
import { profileColumns } from '../db/columnProfile.js';
import { UsageError } from '../errors.js';
import { withSession } from '../db/session.js';
import { action } from './action.js';

interface InitFlags {
  table: string;
  key?: string;
  columns?: string;
  maxCategories: string;
  numbers: string;
  force?: boolean;
}

/** Adds `scorejob model init DIR --table T [--key K] [--columns A,B,…] [--max-categories N] [--force]` to the `model` command. */
export function addModelInitCommand(model: Command): void {
  model
    .command('init')
    .description("draft DIR/manifest.json for the model in DIR from a table's data (statistics, categories, NULL fills): a person reviews it before use")
    .argument('<dir>', 'model directory holding model.json and its weights')
    .requiredOption('--table <table>', 'source table or view (table or schema.table)')
    .option('--key <column>', 'key column, integer, uuid or text (default: the single-column primary key)')
    .option('--columns <a,b,...>', 'feature columns, in model input order (default: every column but the key, in table order)')
    .option('--max-categories <n>', 'most frequent categories kept per text column', '50')
    .option('--numbers <transform>', 'numeric columns as standardize (mean and std from the data) or raw (the model normalizes them itself)', 'standardize')
    .option('--force', 'replace an existing manifest.json')
    .action(
      action(
        async (ctx, dir: string, cmd: Command) => {
          const flags = cmd.opts<InitFlags>();
          const maxCategories = Number(flags.maxCategories);
          if (!Number.isInteger(maxCategories) || maxCategories < 1)
            throw new UsageError(`--max-categories must be a whole number >= 1 (got ${flags.maxCategories})`);
          if (flags.numbers !== 'standardize' && flags.numbers !== 'raw') throw new UsageError(`--numbers must be standardize or raw (got ${flags.numbers})`);
          const numbers = flags.numbers;
          const columns =
            flags.columns === undefined
              ? undefined
              : flags.columns
                  .split(',')
                  .map((c) => c.trim())
                  .filter((c) => c !== '');
          if (columns !== undefined && columns.length === 0) throw new UsageError('--columns names no column');
          // Everything that needs no database is checked first.
          const { checkDraftTarget, draftManifest, readModelSignature, writeDraft } = await import('../model/init.js');
          await checkDraftTarget(dir, flags.force === true);
          const signature = await readModelSignature(dir);
          const profile = await withSession(ctx.config, { requires: 'reachable' }, ({ client }) =>
            profileColumns(client, flags.table, { key: flags.key, columns, maxCategories }),
          );
          const draft = draftManifest(dir, profile, signature, { numbers });
          const file = await writeDraft(dir, draft);
          const lines = [
            `wrote ${file}: ${draft.manifest.features.length} features from ${profile.rows} rows of ${profile.table}, marked "draft": true; review it (scorejob model inspect ${dir}), then delete "draft": true: scorejob run refuses a draft (--dry-run tries it)`,
          ];
          for (const note of draft.notes) lines.push(`  review: ${note}`);
          process.stdout.write(`${lines.join('\n')}\n`);
        },
        { quiet: true },
      ),
    );
}
