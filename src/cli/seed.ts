import type { Command } from 'commander';
import { defaults, parseIntFlag, parseNumberFlag } from '../config.js';
import { seedCustomers } from '../dev/seed.js';
import { action, withPool } from './action.js';

/** `scorejob seed`: deterministic synthetic customers. */
export function registerSeed(program: Command): void {
  program
    .command('seed')
    .description('fill the source table with deterministic synthetic customers (for trying the tool and for benchmarks)')
    .requiredOption('--customers <n>', 'how many customers')
    .option('--seed <s>', `random seed: the same seed gives the same table (default ${defaults.seed})`)
    .option('--null-fraction <f>', 'fraction of NULLs in the nullable columns', String(defaults.nullFraction))
    .option('--table <name>', 'table to (re)create', defaults.seedTable)
    .action(
      action(async (ctx, cmd: Command) => {
        const flags = cmd.opts<{ customers: string; seed?: string; nullFraction: string; table: string }>();
        const customers = parseIntFlag(flags.customers, '--customers', 0, 1_000_000_000);
        const seed = flags.seed === undefined ? undefined : parseIntFlag(flags.seed, '--seed', 0, 2 ** 32 - 1);
        const nullFraction = parseNumberFlag(flags.nullFraction, '--null-fraction', 0, 1);
        await withPool(ctx, async (pool) => {
          const r = await seedCustomers(pool, { customers, seed, nullFraction, table: flags.table, log: ctx.log });
          ctx.log.info({ table: r.table, rows: r.rows, ms: Math.round(r.ms) }, `seeded ${r.rows} customers into ${r.table} in ${(r.ms / 1000).toFixed(1)} s`);
        });
      }),
    );
}
