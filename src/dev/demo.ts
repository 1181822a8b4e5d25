/**
 * `npm start`: the zero-setup demo. A throw-away embedded PostgreSQL, `migrate`, `seed`, one full run,
 * the ledger, and a sample downstream query; everything is removed at the end.
 */
import { defaultRunOptions, defaults, resolveConfig, shippedModelDir } from '../config.js';
import { signalExitCode } from '../errors.js';
import { startEmbeddedPostgres } from './embedded.js';
import { migrate } from '../db/migrate.js';
import type { PoolClient } from '../db/pool.js';
import { withSession } from '../db/session.js';
import { createLogger } from '../log.js';
import { formatSeconds, table } from '../format.js';
import { formatRunList } from '../report/formatRuns.js';
import { listRuns } from '../report/runsReport.js';
import { startRun } from '../run/runJob.js';
import { logRunSummary } from '../run/summary.js';
import { seedCustomers } from './seed.js';

const customers = Number(process.env.DEMO_CUSTOMERS ?? 200_000);
const say = (line = '') => process.stdout.write(line + '\n');

say('scorejob demo: a temporary PostgreSQL, 200,000 synthetic customers, one full scoring run.\n');
const server = await startEmbeddedPostgres();
const stop = async () => server.stop();
process.once('SIGINT', () => void stop().finally(() => process.exit(signalExitCode('SIGINT'))));
let code = 0;
try {
  const config = resolveConfig({ logLevel: defaults.logLevel, pretty: true }, { DATABASE_URL: server.url }, true);
  const log = createLogger({ level: config.logLevel, pretty: true });
  // Not migrated yet: step 2 migrates it.
  await withSession(config, { requires: 'reachable' }, async ({ client, pool }) => {
    say(`1. Embedded PostgreSQL ${await serverVersion(client)} started on 127.0.0.1:${server.port} (data in ${server.dataDir}).`);
    const steps = await migrate(client, config.schema);
    say(`2. scorejob migrate: ${steps.map((s) => `${s.name} ${s.outcome}`).join(', ')}.`);
    const seeded = await seedCustomers(pool, { customers });
    say(`3. scorejob seed --customers ${customers}: ${seeded.rows} rows in ${formatSeconds(seeded.ms)}.\n`);
    say('4. scorejob run:');
    await startRun({ config, log, stop: { requested: undefined } }, defaultRunOptions(shippedModelDir)).then((r) => logRunSummary(log, config.schema, r));
    say('\n5. scorejob runs:');
    say(formatRunList(await listRuns(client, config.schema, { limit: 5 })));
    const sql = `SELECT customer_id, round(score::numeric, 4) AS churn_probability, model_version, run_id, scored_at
  FROM scoring.customer_scores WHERE model_name = 'customer-value' ORDER BY score DESC LIMIT 5`;
    say(`6. What a downstream team queries (the customers most likely to churn):\n\n${sql};\n`);
    const { rows } = await client.query<Record<string, unknown>>(sql);
    say(formatRows(rows));
  });
  say('\nDone. The temporary database is removed now. Next: README.md "Quick start" to point scorejob at your own database.');
} catch (err) {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  code = 1;
} finally {
  await stop();
}
process.exit(code);

async function serverVersion(client: PoolClient): Promise<string> {
  return (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? '?';
}

function formatRows(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return '(no rows)';
  const cols = Object.keys(rows[0] as object);
  const cells = rows.map((r) => cols.map((c) => (r[c] instanceof Date ? r[c].toISOString() : String(r[c]))));
  return table([cols, ...cells], { indent: '  ', rule: true }).join('\n');
}
