import type { Command } from 'commander';
import { defaults, parseIntFlag, parseNumberFlag } from '../config.js';
import { seedCustomers } from '../dev/seed.js';
import { withSession } from '../db/session.js';
import { action } from './action.js';

/** `scorejob seed`: deterministic synthetic customers. */
export function registerSeed(program: Command): void {
  program
    .command('seed')
    .description('create a table of deterministic synthetic customers (for trying the tool and for benchmarks); never touches a table it did not create')
    .requiredOption('--customers <n>', 'how many customers')
    .option('--seed <s>', `random seed: the same seed gives the same table (default ${defaults.seed})`)
    .option('--null-fraction <f>', 'fraction of NULLs in the nullable columns', String(defaults.nullFraction))
    .option('--table <name>', 'table to create', defaults.seedTable)
    .option('--replace', 'replace the table if an earlier seed created it (a table seed did not create is never touched)')
    .action(
      action(async (ctx, cmd: Command) => {
        const flags = cmd.opts<{ customers: string; seed?: string; nullFraction: string; table: string; replace?: boolean }>();
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
