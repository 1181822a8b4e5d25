import type { Command } from 'commander';
import { describeDb } from '../config.js';
import { migrate } from '../db/migrate.js';
import { withSession } from '../db/session.js';
import { action } from './action.js';

/** `scorejob migrate`: create or upgrade the schema. */
export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('create or upgrade the scoring schema from sql/ (idempotent, ordered, recorded)')
    .action(
      action(async (ctx) => {
        // The one command that runs on a database that is not migrated yet.
        await withSession(ctx.config, { requires: 'reachable' }, async ({ client }) => {
          const steps = await migrate(client, ctx.config.schema);
          for (const step of steps) ctx.log.info({ migration: step.name, outcome: step.outcome }, `migration ${step.name}: ${step.outcome}`);
          const applied = steps.filter((s) => s.outcome === 'applied').length;
          const where = `schema "${ctx.config.schema}" of database ${describeDb(ctx.config.db)}`;
          ctx.log.info(
            { schema: ctx.config.schema, database: describeDb(ctx.config.db), applied },
            applied === 0 ? `${where} is up to date` : `applied ${applied} migration(s) to ${where}`,
          );
        });
      }),
    );
}
