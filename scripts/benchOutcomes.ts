/**
 * `npm run bench:outcomes`: how long `scorejob outcomes sync` takes over one run of N scored customers
 * (default 1,000,000; docs/outcomes.md quotes the figure). Creates a database of its own on the server of
 * DATABASE_URL (a role that may create databases), seeds, runs and seeds outcomes through the CLI, then
 * times the sync in-process: the first (every figure computed) and a second one (nothing new matured).
 * The database is dropped at the end (kept with --keep, to look at the plans). `--database NAME` times
 * the syncs again on a database kept earlier (its sync rows deleted first, so the first sync recomputes):
 * for comparing two versions of the code on the same rows, alternately. `--runs N` times N first syncs.
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { resolveDb } from '../src/config.js';
import { createPool } from '../src/db/pool.js';
import { syncOutcomes } from '../src/features/outcomes/index.js';

/** utime + stime of the server processes serving `pids`, in seconds (the server must run on this host). */
function serverCpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // Not on this host, or ended.
    }
  }
  return ticks / 100;
}

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    customers: { type: 'string', default: '1000000' },
    keep: { type: 'boolean', default: false },
    database: { type: 'string' },
    runs: { type: 'string', default: '1' },
  },
});
const customers = Number(values.customers);
const admin = process.env.DATABASE_URL;
if (admin === undefined) throw new Error('set DATABASE_URL to a server where this role may create a database');

const reused = values.database;
const name = reused ?? `scorejob_bench_outcomes_${process.pid}`;
const url = new URL(admin);
url.pathname = `/${name}`;
const env = { ...process.env, DATABASE_URL: url.toString() };
const cli = (...args: string[]) =>
  execFileSync(join(repoRoot, 'bin/scorejob'), ['--log-level', 'warn', ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] }).toString();

/** A model directory whose manifest declares the outcomes and three bands. */
async function benchModel(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sj-bench-outcomes-'));
  await cp(join(repoRoot, 'models/customer-value'), dir, { recursive: true });
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { outcomes?: unknown; output: { bands?: unknown } };
  manifest.outcomes = { table: 'customer_outcomes', horizon: '90 days' };
  manifest.output.bands = [{ name: 'low', below: 0.2 }, { name: 'mid', below: 0.5 }, { name: 'high' }];
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

/** One timed sync: wall, the CPU of the sync's server backends and of this process, and this process's peak RSS so far. */
async function timedSync(pool: pg.Pool, dir: string, asOf: Date, label: string): Promise<void> {
  // The machine may be shared: the CPU time of the sync's own server backends (from /proc; parallel
  // workers, which come and go, not counted) beside the wall time.
  const backends = (await pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database()')).rows.map((r) => r.pid);
  const cpu0 = serverCpuSeconds(backends);
  const own0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await syncOutcomes(pool, { schema: 'scoring', modelDir: dir, asOf });
  const s = (performance.now() - t0) / 1000;
  const cpu = serverCpuSeconds(backends) - cpu0;
  const own = process.cpuUsage(own0);
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(
    `${label}: ${s.toFixed(2)} s wall, ${cpu.toFixed(2)} s CPU of its backends, ${((own.user + own.system) / 1e6).toFixed(2)} s CPU of the job, ` +
      `peak RSS ${rss.toFixed(0)} MB, load ${loadavg()[0]?.toFixed(1)}, for ${customers.toLocaleString('en')} scored customers ` +
      `(${result.map((r) => `run ${r.runId} ${r.outcome}, AUC ${r.auc?.toFixed(4) ?? '—'}`).join('; ')})`,
  );
}

async function bench(): Promise<void> {
  const dir = await benchModel();
  if (reused === undefined) {
    cli('migrate');
    cli('seed', '--customers', String(customers));
    cli('run', '--model', dir);
    cli('seed', '--outcomes');
  }
  const pool = createPool(resolveDb({ DATABASE_URL: url.toString() }), 1);
  try {
    const { rows } = await pool.query<{ published_at: Date }>('SELECT published_at FROM scoring.score_runs ORDER BY run_id DESC LIMIT 1');
    const asOf = new Date(rows[0]!.published_at.getTime() + 91 * 86_400_000);
    for (let i = 0; i < Number(values.runs); i++) {
      // A first sync each time: the sync rows gone, every figure is computed again.
      await pool.query('DELETE FROM scoring.outcome_syncs');
      await pool.query('DELETE FROM scoring.outcome_estimates');
      await timedSync(pool, dir, asOf, 'first sync');
    }
    await timedSync(pool, dir, asOf, 'second sync (nothing new)');
    const fig = await pool.query(
      'SELECT auc, estimated_auc, calibration_error, positive_rate, expected_positive_rate FROM scoring.model_performance WHERE band IS NULL',
    );
    console.log('whole run:', fig.rows[0]);
  } finally {
    await pool.end();
  }
}

const c = new pg.Client({ connectionString: admin });
await c.connect();
if (reused === undefined) await c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`);
try {
  await bench();
} finally {
  if (values.keep === true || reused !== undefined) console.log(`kept database ${name}`);
  else await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`);
  await c.end();
}
