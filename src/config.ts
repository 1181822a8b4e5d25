import { statSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseIntoClientConfig } from 'pg-connection-string';
import { UsageError } from './errors.js';

/** Where the job connects. The password is kept out of every description of it. */
export interface DbConfig {
  host: string;
  port: number;
  user: string;
  database: string;
  /** Never logged, never put in an error message. */
  password: string | undefined;
  /** `require`, `verify-full`, ... or undefined for no TLS. */
  sslmode: string | undefined;
  /** What chose it: DATABASE_URL, the libpq variables, or libpq's defaults asked for (`--libpq-defaults`). Undefined: built by code. */
  origin?: DbOrigin;
  /**
   * Set when nothing named a database (and the defaults were not asked for): why the job will not
   * connect. {@link createPool} refuses with it (exit 2), so a command that needs no database still runs.
   */
  refusal?: string;
}

export type DbOrigin = 'DATABASE_URL' | 'libpq variables' | 'libpq defaults';

/** Options of every command. Built once by {@link resolveConfig}, then frozen. */
export interface Config {
  db: DbConfig;
  /** Schema that holds the ledger, the scores and the published view. Default `scoring`. */
  schema: string;
  /** pino level: fatal, error, warn, info, debug, trace, silent. */
  logLevel: string;
  /** Human-readable logs (pino-pretty) instead of JSON lines. Default: when stdout is a terminal. */
  pretty: boolean;
}

/** Options of `scorejob run` (and the run a resume continues). */
// A run feature's own options are declared on RunOptions from its folder (src/features/<name>/).
export interface RunOptions {
  /** Model directory: model.json, weights, manifest.json. */
  modelDir: string;
  /** Target rows per key-range chunk. */
  chunkSize: number;
  trigger: Trigger;
  /** Score and validate, publish nothing. */
  dryRun: boolean;
  backend: BackendChoice;
  /** Published runs kept in history (docs/downstream.md). */
  keepRuns: number;
  /** A run whose rejected/total ratio exceeds this fails without publishing. */
  maxRejectRatio: number;
  /** A run whose scores' PSI against the previous published run exceeds this fails without publishing; undefined: no PSI gate. */
  maxPsi?: number | undefined;
  /** `--min-auc`: the realised-AUC gate (src/features/outcomes); undefined: none. */
  minAuc?: number | undefined;
  /** `--max-feature-psi`: a run with a feature whose PSI (against the model's baseline or the previous published run) exceeds this fails without publishing. */
  maxFeaturePsi?: number | undefined;
  /** `--max-segment-psi`: a run with a segment (manifest `segments`) whose PSI against the previous published run exceeds this fails without publishing. */
  maxSegmentPsi?: number | undefined;
  /** Attempts per chunk for transient failures (connection lost, serialization failure). */
  chunkAttempts: number;
  /** For scheduled runs: the tick the run is for. */
  tickAt?: Date | undefined;
  /** `--if-due`: the schedule whose tick `tickAt` is; checked again once the run lock is held. */
  dueCheck?: { expression: string; timezone?: string | undefined } | undefined;
  /** `--ready-deadline`: ms after the tick past which a source not ready is a stale_source failure (src/features/readiness). */
  readyDeadlineMs?: number | undefined;
  /** `--skip-check NAME` (repeatable) and `--reason TEXT`: input checks a person skips for this run. */
  skipChecks?: { names: readonly string[]; reason: string | undefined } | undefined;
  /** `--on-publish-command`: a shell command run after the publish committed (src/publish/onPublishCommand.ts). */
  onPublishCommand?: string | undefined;
  /** `--workers`: a shared run with this many local workers (src/workers/sharedRun.ts); undefined: one process, as before. */
  workers?: number | undefined;
  /** `--chunk-lease`: seconds a worker's claim on a chunk lasts without renewal. */
  chunkLeaseS?: number | undefined;
  /** `--reasons K`: store the K features that moved each customer's score most (src/model/explainer.ts); undefined: none. */
  reasons?: number | undefined;
  /** `--only-new`: rescore only customers new (or changed) since the published run, carry the others forward. */
  onlyNew?: boolean | undefined;
  /** `--replace-promoted`: publish over a sibling run a person published by hand (src/publish/promotionGuard.ts); else such a run is refused. */
  replacePromoted?: boolean | undefined;
}

export type Trigger = 'manual' | 'cron' | 'schedule';
export const triggers: readonly Trigger[] = ['manual', 'cron', 'schedule'];
export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const backendChoices: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];
export const logLevels: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Every default, once: the CLI's options (and their help), the scheduler, the demo, seed and the
 * tests' helpers read them here. README "Configuration" documents them.
 */
export const defaults = Object.freeze({
  schema: 'scoring',
  logLevel: 'info',
  /** Query commands (`runs`, `model inspect`) log at this level unless told otherwise, so their stdout stays clean. */
  queryLogLevel: 'warn',
  /** The shipped model, relative to the installation (not the working directory). */
  modelDir: 'models/customer-value',
  chunkSize: 50_000,
  trigger: 'manual',
  backend: 'auto',
  keepRuns: 12,
  maxRejectRatio: 0.01,
  chunkAttempts: 4,
  /** Seconds a run waits for an unreachable database (chunks and ledger alike) before it fails, resumably. */
  outageBudgetS: 60,
  progressIntervalS: 30,
  /** Monthly, 02:30 on the 1st: after the nightly loads of the month's last day. */
  cron: '30 2 1 * *',
  runsLimit: 20,
  /** `scorejob seed`: the same seed gives the same table. */
  seed: 1,
  nullFraction: 0.02,
  seedTable: 'customers',
});

export const defaultModelDir = defaults.modelDir;

/** The shipped model's directory, wherever scorejob is installed. */
export const shippedModelDir = fileURLToPath(new URL(`../${defaults.modelDir}/`, import.meta.url));

/** A run's options with every default: what `scorejob run` does without flags or environment (the demo, tests). */
export function defaultRunOptions(modelDir: string = shippedModelDir): RunOptions {
  return {
    modelDir,
    chunkSize: defaults.chunkSize,
    trigger: defaults.trigger,
    dryRun: false,
    backend: defaults.backend,
    keepRuns: defaults.keepRuns,
    maxRejectRatio: defaults.maxRejectRatio,
    chunkAttempts: defaults.chunkAttempts,
  };
}

type Env = Record<string, string | undefined>;

/** Flags shared by every command, already checked (the CLI reads them with their environment variables). */
export interface GlobalFlags {
  schema?: string | undefined;
  logLevel?: string | undefined;
  pretty?: boolean | undefined;
  /** `--libpq-defaults`: connect where libpq's defaults lead when no variable names a database; else SCOREJOB_LIBPQ_DEFAULTS. */
  libpqDefaults?: boolean | undefined;
}

/** Builds the frozen Config from the global settings (defaults for those not given) and the connection's environment. */
export function resolveConfig(flags: GlobalFlags, env: Env = process.env, stdoutIsTty = Boolean(process.stdout.isTTY)): Config {
  const schema = parseSchema(flags.schema ?? defaults.schema, '--schema');
  const logLevel = parseLogLevel(flags.logLevel ?? defaults.logLevel, '--log-level');
  const pretty = flags.pretty ?? stdoutIsTty;
  const libpqDefaults = flags.libpqDefaults === true || parseSwitch(env.SCOREJOB_LIBPQ_DEFAULTS, 'SCOREJOB_LIBPQ_DEFAULTS');
  return Object.freeze({ db: Object.freeze(resolveDb(env, { libpqDefaults })), schema, logLevel, pretty });
}

/** An on/off variable: 1/true or 0/false (unset or blank: off). */
function parseSwitch(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '' || value === '0' || value === 'false') return false;
  if (value === '1' || value === 'true') return true;
  throw new UsageError(`${name}: "${value}" is not 1 or 0`);
}

/** `--schema`: 1 to 63 characters (PostgreSQL's identifier limit). */
export function parseSchema(value: string, name: string): string {
  if (value === '' || value.length > 63) throw new UsageError(`${name}: "${value}" is not a schema name (1 to 63 characters)`);
  return value;
}

/** `--log-level`: one of pino's levels. */
export function parseLogLevel(value: string, name: string): string {
  if (!logLevels.includes(value)) throw new UsageError(`${name}: "${value}" is not one of ${logLevels.join(', ')}`);
  return value;
}

/** The variables that name a database; with none of them set, the job connects nowhere unless told to. */
const namingVariables = ['DATABASE_URL', 'PGHOST', 'PGDATABASE'] as const;

/**
 * DATABASE_URL if set, else the libpq variables. With none of {@link namingVariables} set, libpq's
 * defaults (localhost, the OS user's database) would reach whatever is there, someone else's database
 * perhaps: the result then carries a `refusal` unless `libpqDefaults` says they are meant. Blank
 * variables (a misspelt or half-loaded env file) count as unset.
 */
export function resolveDb(env: Env, opts: { libpqDefaults?: boolean } = {}): DbConfig {
  const given = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);
  const url = given('DATABASE_URL');
  if (url !== undefined) return { ...fromUrl(url, given), origin: 'DATABASE_URL' };
  const user = given('PGUSER') ?? osUser();
  const db: DbConfig = {
    host: given('PGHOST') ?? 'localhost',
    port: parsePort(given('PGPORT') ?? '5432', 'PGPORT'),
    user,
    database: given('PGDATABASE') ?? user,
    password: given('PGPASSWORD'),
    sslmode: given('PGSSLMODE'),
  };
  if (namingVariables.some((name) => given(name) !== undefined)) return { ...db, origin: 'libpq variables' };
  const service = given('PGSERVICE');
  if (service !== undefined) {
    return {
      ...db,
      refusal: `PGSERVICE=${service} is set, but scorejob does not read pg_service.conf: set DATABASE_URL=postgres://user@host:port/database (or PGHOST and PGDATABASE) to that service's connection`,
    };
  }
  if (opts.libpqDefaults) return { ...db, origin: 'libpq defaults' };
  return {
    ...db,
    refusal:
      `no database configured (none of ${namingVariables.join(', ')} is set; libpq's defaults would reach ${describeDb(db)}): ` +
      `set DATABASE_URL=postgres://user@host:port/database (for cron: in the SCOREJOB_ENV file), or PGHOST and PGDATABASE; ` +
      `if the defaults are meant, pass --libpq-defaults (or set SCOREJOB_LIBPQ_DEFAULTS=1)`,
  };
}

function fromUrl(url: string, given: (name: string) => string | undefined): DbConfig {
  let parsed: ReturnType<typeof parseIntoClientConfig>;
  try {
    if (!/^postgres(ql)?:\/\//.test(url)) throw new Error('not a postgres:// URL');
    parsed = parseIntoClientConfig(url);
  } catch {
    // The URL may hold a password: name the variable, never echo its value.
    throw new UsageError('DATABASE_URL is not a valid postgres:// connection URL (value not shown: it may hold a password)');
  }
  const sslmode = /[?&]sslmode=([^&]+)/.exec(url)?.[1];
  return {
    host: parsed.host ?? given('PGHOST') ?? 'localhost',
    port: parsePort(String(parsed.port ?? given('PGPORT') ?? 5432), 'DATABASE_URL port'),
    user: parsed.user ?? given('PGUSER') ?? osUser(),
    database: parsed.database ?? given('PGDATABASE') ?? parsed.user ?? osUser(),
    password: parsed.password !== undefined && parsed.password !== '' ? String(parsed.password) : given('PGPASSWORD'),
    sslmode: sslmode ?? given('PGSSLMODE'),
  };
}

function parsePort(value: string, name: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`${name}: "${value}" is not a port number (1-65535)`);
  }
  return port;
}

function osUser(): string {
  return process.env.USER ?? process.env.LOGNAME ?? 'postgres';
}

/** `user@host:port/database`: how the target is named in logs and errors (no password, ever). */
export function describeDb(db: Pick<DbConfig, 'user' | 'host' | 'port' | 'database'>): string {
  return `${db.user}@${db.host}:${db.port}/${db.database}`;
}

/** Parses a whole number flag, naming the flag when it is wrong. */
export function parseIntFlag(value: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!/^\s*-?\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag}: "${value}" is not a whole number between ${min} and ${max}`);
  }
  return n;
}

/** Parses a number flag in [min, max]. */
export function parseNumberFlag(value: string, flag: string, min: number, max: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`${flag}: "${value}" is not a number between ${min} and ${max}`);
  }
  return n;
}

/** How a run reports itself, per invocation (not stored on the run, so a resume may choose differently). */
export interface ObserveOptions {
  /** Prometheus text file (node_exporter textfile collector) written atomically at the end of every run, success or failure. */
  metricsFile: string | undefined;
  /** Prometheus Pushgateway the same metrics are pushed to (PUT: they replace the group `job="scorejob", model=…`). */
  metricsPush: string | undefined;
  /** Seconds between progress log lines when stderr is not a terminal; 0 for none. Default 30. */
  progressIntervalS: number;
}

/** `--metrics-file`: an absolute path in a directory that exists, not a directory itself; checked before anything is written. */
export function checkMetricsFile(given: string, name: string): string {
  const file = resolvePath(given);
  const dir = statSync(dirname(file), { throwIfNoEntry: false });
  if (!dir?.isDirectory()) throw new UsageError(`${name}: "${given}": the directory ${dirname(file)} does not exist`);
  if (statSync(file, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${name}: "${given}" is a directory, not a file`);
  return file;
}

/** `--metrics-push`: a Pushgateway's http(s) base URL, without credentials in a log line's reach. */
export function checkMetricsPush(given: string, name: string): string {
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    // Not echoed when it may hold a password (user:password@host).
    throw new UsageError(
      `${name}: ${given.includes('@') ? 'the value' : `"${given}"`} is not a URL; give the Pushgateway's base URL, e.g. http://pushgateway.monitoring:9091`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`${name}: "${url.protocol}" is not http: or https:; give the Pushgateway's base URL, e.g. http://pushgateway.monitoring:9091`);
  if (url.search !== '' || url.hash !== '')
    throw new UsageError(`${name}: "${url.origin}${url.pathname}…" has a query or fragment; give the Pushgateway's base URL only`);
  return url.toString().replace(/\/+$/, '');
}

/** Shortest time between progress log lines: a shorter one floods the log with lines nobody reads (and costs a timer per line). */
export const minProgressIntervalS = 0.1;

/** `--progress-interval`: 0 (no progress lines) or seconds from {@link minProgressIntervalS} to a day. */
export function parseProgressInterval(value: string, name: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (n !== 0 && (n < minProgressIntervalS || n > 86_400))) {
    throw new UsageError(`${name}: "${value}" is not 0 (no progress lines) or a number of seconds from ${minProgressIntervalS} to 86400`);
  }
  return n;
}

/** Checks a value against a list, naming the flag. */
export function parseChoice<T extends string>(value: string, flag: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(`${flag}: "${value}" is not one of ${choices.join(', ')}`);
  }
  return value as T;
}
