import type { Command } from 'commander';
import { defaults, parseIntFlag, parseNumberFlag } from '../config.js';
import { seedCustomers } from '../dev/seed.js';
import { withSession } from '../db/session.js';
import { UsageError } from '../errors.js';
import { action, type Context } from './action.js';

/** `scorejob seed`: deterministic synthetic customers. */
export function registerSeed(program: Command): void {
  program
    .command('seed')
    .description('create a table of deterministic synthetic customers (for trying the tool and for benchmarks); never touches a table it did not create')
    .option('--customers <n>', 'how many customers (required unless --outcomes)')
    .option('--seed <s>', `random seed: the same seed gives the same table (default ${defaults.seed})`)
    .option('--null-fraction <f>', 'fraction of NULLs in the nullable columns', String(defaults.nullFraction))
    .option('--table <name>', 'table to create', defaults.seedTable)
    .option('--replace', 'replace the table if an earlier seed created it (a table seed did not create is never touched)')
    .option(
      '--outcomes',
      'instead of customers: one outcome per customer of the published run, drawn with its score as probability, into --outcomes-table (docs/outcomes.md)',
    )
    .option('--outcomes-table <name>', 'table --outcomes creates', 'customer_outcomes')
    .option('--horizon <interval>', 'with --outcomes: events fall within this interval after the run was published', '90 days')
    .option('--model-name <name>', 'with --outcomes: which published model, when several are')
    .action(
      action(async (ctx, cmd: Command) => {
        const flags = cmd.opts<{
          customers?: string;
          seed?: string;
          nullFraction: string;
          table: string;
          replace?: boolean;
          outcomes?: boolean;
          outcomesTable: string;
          horizon: string;
          modelName?: string;
        }>();
        if (flags.outcomes === true) return seedOutcomesCommand(ctx, flags);
        if (flags.customers === undefined)
          throw new UsageError('--customers: how many customers to seed is required (or --outcomes, to seed outcomes of the published run)');
        const customers = parseIntFlag(flags.customers, '--customers', 0, 1_000_000_000);
        const seed = flags.seed === undefined ? undefined : parseIntFlag(flags.seed, '--seed', 0, 2 ** 32 - 1);
        const nullFraction = parseNumberFlag(flags.nullFraction, '--null-fraction', 0, 1);
        // The source table is the user's: seeding needs no scoring schema.
        await withSession(ctx.config, { requires: 'reachable', client: false }, async ({ pool }) => {
          const r = await seedCustomers(pool, { customers, seed, nullFraction, table: flags.table, replace: flags.replace === true, log: ctx.log });
          ctx.log.info({ table: r.table, rows: r.rows, ms: Math.round(r.ms) }, `seeded ${r.rows} customers into ${r.table} in ${(r.ms / 1000).toFixed(1)} s`);
        });
      }),
    );
}

async function seedOutcomesCommand(
  ctx: Context,
  flags: { seed?: string; replace?: boolean; outcomesTable: string; horizon: string; modelName?: string },
): Promise<void> {
  const seed = flags.seed === undefined ? undefined : parseIntFlag(flags.seed, '--seed', 0, 2 ** 31 - 1);
  const { seedOutcomes } = await import('../dev/seedOutcomes.js');
  await withSession(ctx.config, { client: false }, async ({ pool }) => {
    const r = await seedOutcomes(pool, {
      schema: ctx.config.schema,
      table: flags.outcomesTable,
      horizon: flags.horizon,
      seed,
      replace: flags.replace === true,
      modelName: flags.modelName,
      log: ctx.log,
    });
    ctx.log.info({ table: r.table, run_id: r.runId, rows: r.rows, positives: r.positives }, `seeded ${r.rows} outcomes of run ${r.runId} into ${r.table}`);
  });
}
