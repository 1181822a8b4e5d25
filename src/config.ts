import { statSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
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
}

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
export interface RunOptions {
  /** Model directory: model.json, weights, manifest.json. */
  modelDir: string;
  /** Target rows per key-range chunk. */
  chunkSize: number;
  trigger: Trigger;
  /** Score and validate, publish nothing. */
  dryRun: boolean;
  backend: BackendChoice;
  /** Published runs kept in history (README "The downstream contract", "History"). */
  keepRuns: number;
  /** A run whose rejected/total ratio exceeds this fails without publishing. */
  maxRejectRatio: number;
  /** A run whose scores' PSI against the previous published run exceeds this fails without publishing; undefined: no PSI gate. */
  maxPsi?: number | undefined;
  /** Attempts per chunk for transient failures (connection lost, serialization failure). */
  chunkAttempts: number;
  /** For scheduled runs: the tick the run is for. */
  tickAt?: Date | undefined;
  /** `--if-due`: the schedule whose tick `tickAt` is; checked again once the run lock is held. */
  dueCheck?: { expression: string; timezone?: string | undefined } | undefined;
}

export type Trigger = 'manual' | 'cron' | 'schedule';
export const triggers: readonly Trigger[] = ['manual', 'cron', 'schedule'];
export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const backendChoices: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];
const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const defaultModelDir = 'models/customer-value';

type Env = Record<string, string | undefined>;

/** Flags shared by every command (commander's parsed global options). */
export interface GlobalFlags {
  schema?: string | undefined;
  logLevel?: string | undefined;
  pretty?: boolean | undefined;
}

/** Builds the frozen Config from flags (first), the environment, then defaults. */
export function resolveConfig(flags: GlobalFlags, env: Env = process.env, stdoutIsTty = Boolean(process.stdout.isTTY)): Config {
  const schema = flags.schema ?? env.SCOREJOB_SCHEMA ?? 'scoring';
  if (schema === '' || schema.length > 63) {
    throw new UsageError(`${settingName(flags.schema, '--schema', 'SCOREJOB_SCHEMA')}: "${schema}" is not a schema name (1 to 63 characters)`);
  }
  const logLevel = flags.logLevel ?? env.SCOREJOB_LOG_LEVEL ?? 'info';
  if (!logLevels.includes(logLevel)) {
    throw new UsageError(`${settingName(flags.logLevel, '--log-level', 'SCOREJOB_LOG_LEVEL')}: "${logLevel}" is not one of ${logLevels.join(', ')}`);
  }
  const pretty = flags.pretty ?? stdoutIsTty;
  return Object.freeze({ db: Object.freeze(resolveDb(env)), schema, logLevel, pretty });
}

/** What a validation message names: the flag when it was given, else the environment variable the value came from. */
export function settingName(flagValue: unknown, flag: string, variable: string): string {
  return flagValue !== undefined ? flag : variable;
}

/** DATABASE_URL if set, else the libpq variables, else libpq's defaults. */
export function resolveDb(env: Env): DbConfig {
  const url = env.DATABASE_URL;
  if (url !== undefined && url !== '') {
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
      host: parsed.host ?? env.PGHOST ?? 'localhost',
      port: parsePort(String(parsed.port ?? env.PGPORT ?? 5432), 'DATABASE_URL port'),
      user: parsed.user ?? env.PGUSER ?? osUser(),
      database: parsed.database ?? env.PGDATABASE ?? parsed.user ?? osUser(),
      password: parsed.password !== undefined && parsed.password !== '' ? String(parsed.password) : env.PGPASSWORD,
      sslmode: sslmode ?? env.PGSSLMODE,
    };
  }
  const user = env.PGUSER ?? osUser();
  return {
    host: env.PGHOST ?? 'localhost',
    port: parsePort(env.PGPORT ?? '5432', 'PGPORT'),
    user,
    database: env.PGDATABASE ?? user,
    password: env.PGPASSWORD,
    sslmode: env.PGSSLMODE,
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
export function describeDb(db: DbConfig): string {
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
  /** Seconds between progress log lines when stderr is not a terminal; 0 for none. Default 30. */
  progressIntervalS: number;
}

/** `--metrics-file` (env SCOREJOB_METRICS_FILE) and `--progress-interval` (env SCOREJOB_PROGRESS_INTERVAL), checked before anything is written. */
export function resolveObserveOptions(flags: { metricsFile?: string | undefined; progressInterval?: string | undefined }, env: Env = process.env): ObserveOptions {
  const interval = flags.progressInterval ?? env.SCOREJOB_PROGRESS_INTERVAL ?? '30';
  const progressIntervalS = parseProgressInterval(interval, settingName(flags.progressInterval, '--progress-interval', 'SCOREJOB_PROGRESS_INTERVAL'));
  const given = flags.metricsFile ?? (env.SCOREJOB_METRICS_FILE || undefined);
  if (given === undefined) return Object.freeze({ metricsFile: undefined, progressIntervalS });
  const name = flags.metricsFile !== undefined ? '--metrics-file' : 'SCOREJOB_METRICS_FILE';
  const file = resolvePath(given);
  const dir = statSync(dirname(file), { throwIfNoEntry: false });
  if (!dir?.isDirectory()) throw new UsageError(`${name}: "${given}": the directory ${dirname(file)} does not exist`);
  if (statSync(file, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${name}: "${given}" is a directory, not a file`);
  return Object.freeze({ metricsFile: file, progressIntervalS });
}

/** Shortest time between progress log lines: a shorter one floods the log with lines nobody reads (and costs a timer per line). */
export const minProgressIntervalS = 0.1;

/** `--progress-interval`: 0 (no progress lines) or seconds from {@link minProgressIntervalS} to a day. */
function parseProgressInterval(value: string, name: string): number {
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
