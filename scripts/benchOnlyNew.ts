/**
 * `npx tsx scripts/benchOnlyNew.ts --customers N [--new-fraction F]`: the wall time of `scorejob run --only-new`
 * after F (default 0.01) new customers against a full `scorejob run` of the same table, each a child process
 * (spawn to exit), on DATABASE_URL. Seeds `customers` (not timed) when it does not hold N rows; the new
 * customers are removed again at the end. Before each timed run the tables are vacuumed, as autovacuum
 * leaves them within minutes of a run's load (a month's only-new run comes days after the full run); with
 * --no-vacuum they are not (the index-only scans of the key comparison then read the heap).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { resolveDb } from '../src/config.js';
import { migrate } from '../src/db/migrate.js';
import { createPool } from '../src/db/pool.js';
import { seedCustomers } from '../src/dev/seed.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    customers: { type: 'string' },
    'new-fraction': { type: 'string', default: '0.01' },
    rounds: { type: 'string', default: '1' },
    'no-vacuum': { type: 'boolean', default: false },
  },
});
const customers = Number(values.customers);
const fraction = Number(values['new-fraction']);
if (!Number.isSafeInteger(customers) || customers < 100 || !(fraction > 0 && fraction < 1) || !process.env.DATABASE_URL) {
  process.stderr.write('usage: DATABASE_URL=… npx tsx scripts/benchOnlyNew.ts --customers N [--new-fraction F] [--rounds R]\n');
  process.exit(2);
}
const pool = createPool(resolveDb({ DATABASE_URL: process.env.DATABASE_URL }), 2);

async function settle(): Promise<void> {
  if (values['no-vacuum']) return;
  const c = await pool.connect();
  try {
    await c.query('VACUUM ANALYZE customers');
    await c.query('VACUUM ANALYZE scoring.score_data');
  } finally {
    c.release();
  }
}

function run(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin/scorejob'), 'run', '--no-pretty', '--keep-runs', '2', ...args], {
    env: process.env,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (r.status !== 0) throw new Error(`scorejob run ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return performance.now() - t0;
}

try {
  const c = await pool.connect();
  try {
    await migrate(c, 'scoring');
    const n = await c
      .query<{ n: number }>(`SELECT CASE WHEN to_regclass('customers') IS NULL THEN 0 ELSE (SELECT count(*)::int FROM customers) END AS n`)
      .catch(() => ({ rows: [{ n: 0 }] }));
    if (n.rows[0]?.n !== customers) {
      process.stdout.write(`seeding ${customers} customers (not timed)\n`);
      // replace: only a table an earlier seed created; seed refuses anything else.
      await seedCustomers(pool, { customers, seed: 42, replace: true });
    }
  } finally {
    c.release();
  }
  const added = Math.round(customers * fraction);
  for (let round = 1; round <= Number(values.rounds); round++) {
    await settle();
    const full = run([]);
    await pool.query(
      `INSERT INTO customers SELECT customer_id + 1000000000000, tenure_months, orders_12m, revenue_12m, avg_order_value, days_since_last_order, support_tickets_12m,
      discount_share, returns_12m, web_sessions_30d, email_open_rate, segment, region, channel, is_subscriber, has_app FROM customers ORDER BY customer_id LIMIT $1`,
      [added],
    );
    await settle();
    const incremental = run(['--only-new']);
    await pool.query('DELETE FROM customers WHERE customer_id >= 1000000000000');
    process.stdout.write(
      `round ${round}: full run of ${customers} customers ${(full / 1000).toFixed(1)} s; --only-new with ${added} new (${(fraction * 100).toFixed(2)}%) ${(incremental / 1000).toFixed(1)} s: ` +
        `${((incremental / full) * 100).toFixed(0)}% of the full run's wall time (${((1 - incremental / full) * 100).toFixed(0)}% saved)\n`,
    );
  }
} finally {
  await pool.end();
}
