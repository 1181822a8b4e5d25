import { Option, type Command } from 'commander';
import { resolve } from 'node:path';
import {
  backendChoices,
  checkMetricsFile,
  checkMetricsPush,
  defaults,
  parseChoice,
  parseIntFlag,
  parseLogLevel,
  parseNumberFlag,
  parseProgressInterval,
  parseSchema,
  shippedModelDir,
  triggers,
  type BackendChoice,
  type Trigger,
} from '../config.js';
import { autoWorkers, defaultLeaseS } from '../workers/workerCount.js';
import { parseDuration } from '../features/readiness/duration.js';
import { featureRunSettings } from '../features/settings.js';
import type { DefaultedSetting, Setting } from '../setting.js';

export type { DefaultedSetting, Setting } from '../setting.js';

/** Global: schema of the ledger and the scores. */
export const schema: DefaultedSetting<string> = {
  flags: '--schema <name>',
  description: 'schema of the ledger and the scores',
  env: 'SCOREJOB_SCHEMA',
  default: defaults.schema,
  parse: parseSchema,
};

/** Global. No commander default: the query commands log at a quieter level when it is not set. */
export const logLevel: Setting<string> = {
  flags: '--log-level <level>',
  description: `fatal, error, warn, info, debug, trace or silent; default: ${defaults.logLevel} (${defaults.queryLogLevel} for runs and model inspect)`,
  env: 'SCOREJOB_LOG_LEVEL',
  parse: parseLogLevel,
};

export const model: Setting<string> = {
  flags: '--model <dir>',
  description: `model directory; default: the shipped ${defaults.modelDir}`,
  env: 'SCOREJOB_MODEL_DIR',
  blankIsUnset: true,
  forward: 'path',
  // Relative to the working directory; the shipped model is found relative to the installation (also for an empty flag, as before).
  parse: (value) => (value === '' ? shippedModelDir : resolve(value)),
};

export const chunkSize: DefaultedSetting<number> = {
  flags: '--chunk-size <n>',
  description: 'rows per key-range chunk',
  env: 'SCOREJOB_CHUNK_SIZE',
  default: String(defaults.chunkSize),
  forward: 'value',
  parse: (value, name) => parseIntFlag(value, name, 1, 10_000_000),
};

export const trigger: DefaultedSetting<Trigger> = {
  flags: '--trigger <trigger>',
  description: 'what started the run: manual, cron or schedule',
  default: defaults.trigger,
  parse: (value, name) => parseChoice(value, name, triggers),
};

export const backend: DefaultedSetting<BackendChoice> = {
  flags: '--backend <backend>',
  description: 'TensorFlow.js backend: auto, tensorflow, wasm or cpu',
  env: 'SCOREJOB_BACKEND',
  default: defaults.backend,
  forward: 'value',
  parse: (value, name) => parseChoice(value, name, backendChoices),
};

export const keepRuns: DefaultedSetting<number> = {
  flags: '--keep-runs <n>',
  description: 'succeeded runs kept in history',
  env: 'SCOREJOB_KEEP_RUNS',
  default: String(defaults.keepRuns),
  forward: 'value',
  parse: (value, name) => parseIntFlag(value, name, 1, 10_000),
};

export const maxRejectRatio: DefaultedSetting<number> = {
  flags: '--max-reject-ratio <ratio>',
  description: 'fail without publishing when more than this fraction of rows is rejected',
  env: 'SCOREJOB_MAX_REJECT_RATIO',
  default: String(defaults.maxRejectRatio),
  forward: 'value',
  parse: (value, name) => parseNumberFlag(value, name, 0, 1),
};

export const chunkAttempts: DefaultedSetting<number> = {
  flags: '--chunk-attempts <n>',
  description: 'attempts per chunk on transient database errors',
  default: String(defaults.chunkAttempts),
  forward: 'value',
  parse: (value, name) => parseIntFlag(value, name, 1, 100),
};

/** `--outage-budget`: one budget for every wait on an unreachable database (the chunks' and the ledger's). */
export const outageBudget: DefaultedSetting<number> = {
  flags: '--outage-budget <seconds>',
  description: 'seconds a run waits for an unreachable database (a restart, a failover) before it fails, resumably; the waiting uses up no --chunk-attempts',
  env: 'SCOREJOB_OUTAGE_BUDGET',
  default: String(defaults.outageBudgetS),
  forward: 'value',
  parse: (value, name) => parseIntFlag(value, name, 1, 86_400),
};

export const maxPsi: Setting<number> = {
  flags: '--max-psi <x>',
  description: "fail without publishing when the scores' PSI against the previous published run exceeds this; default: no PSI gate",
  env: 'SCOREJOB_MAX_PSI',
  blankIsUnset: true,
  forward: 'value',
  parse: (value, name) => parseNumberFlag(value, name, 0, 1000),
};

export const minAuc: Setting<number> = {
  flags: '--min-auc <x>',
  description:
    "fail without publishing while the model's newest mature run's realised AUC (manifest outcomes, `scorejob outcomes sync`) is below this; default: no AUC gate",
  env: 'SCOREJOB_MIN_AUC',
  blankIsUnset: true,
  forward: 'value',
  parse: (value, name) => parseNumberFlag(value, name, 0, 1),
};

export const maxFeaturePsi: Setting<number> = {
  flags: '--max-feature-psi <x>',
  description:
    "fail without publishing when a feature's PSI against the model's baseline.json (scorejob model baseline) or the previous published run exceeds this, naming the features; default: no feature gate",
  env: 'SCOREJOB_MAX_FEATURE_PSI',
  blankIsUnset: true,
  forward: 'value',
  parse: (value, name) => parseNumberFlag(value, name, 0, 1000),
};

export const maxSegmentPsi: Setting<number> = {
  flags: '--max-segment-psi <x>',
  description:
    "fail without publishing when a segment's PSI (a value of a column of the manifest's segments, its scores against the same segment in the previous published run) exceeds this, naming the segments; default: no segment gate",
  env: 'SCOREJOB_MAX_SEGMENT_PSI',
  blankIsUnset: true,
  forward: 'value',
  parse: (value, name) => parseNumberFlag(value, name, 0, 1000),
};

export const metricsFile: Setting<string> = {
  flags: '--metrics-file <path>',
  description: 'write Prometheus metrics (textfile collector) at the end of the run, success or failure',
  env: 'SCOREJOB_METRICS_FILE',
  blankIsUnset: true,
  forward: 'path',
  parse: checkMetricsFile,
};

export const metricsPush: Setting<string> = {
  flags: '--metrics-push <url>',
  description:
    'push the same metrics to this Prometheus Pushgateway at the end of the run, success or failure (replacing the group job="scorejob", model=NAME)',
  env: 'SCOREJOB_METRICS_PUSH',
  blankIsUnset: true,
  forward: 'value',
  parse: checkMetricsPush,
};

export const progressInterval: DefaultedSetting<number> = {
  flags: '--progress-interval <seconds>',
  description: 'seconds between progress log lines when stderr is not a terminal; 0 for none',
  env: 'SCOREJOB_PROGRESS_INTERVAL',
  default: String(defaults.progressIntervalS),
  forward: 'value',
  parse: parseProgressInterval,
};

/** A shell command run after a publish, rollback or retire committed (src/publish/onPublishCommand.ts). */
export const onPublishCommand: Setting<string> = {
  flags: '--on-publish-command <cmd>',
  description: 'shell command run after the publish committed, with SCOREJOB_RUN_ID etc. in its environment; its failure is logged, not fatal',
  env: 'SCOREJOB_ON_PUBLISH_COMMAND',
  blankIsUnset: true,
  forward: 'value',
  parse: (value) => value,
};

/** `--workers N|auto`: a shared run (src/workers/sharedRun.ts). Unset: one process scores the chunks in order, as before. */
export const workers: Setting<number> = {
  flags: '--workers <n>',
  description:
    'share the run between this many local worker processes (auto: one per core, less one beside a local database); `scorejob work` may join it from other machines; default: one process, unshared',
  env: 'SCOREJOB_WORKERS',
  blankIsUnset: true,
  forward: 'value',
  parse: (value, name) => (value === 'auto' ? autoWorkers(process.env.PGHOST ?? hostOfUrl(process.env.DATABASE_URL)) : parseIntFlag(value, name, 1, 256)),
};

/** `--chunk-lease`: how long a worker's claim on a chunk lasts without renewal (shared runs). */
export const chunkLease: DefaultedSetting<number> = {
  flags: '--chunk-lease <seconds>',
  description: "seconds a worker's claim on a chunk lasts unrenewed (shared runs): a stalled or dead worker's chunk is taken over after it",
  env: 'SCOREJOB_CHUNK_LEASE',
  default: String(defaultLeaseS),
  forward: 'value',
  parse: (value, name) => parseIntFlag(value, name, 1, 3600),
};

/** `scorejob work --wait`: how long a worker waits for a run to join. */
export const workWait: DefaultedSetting<number> = {
  flags: '--wait <seconds>',
  description: 'with no run to join, wait this long for one, then exit 0',
  env: 'SCOREJOB_WORK_WAIT',
  default: '300',
  parse: (value, name) => parseIntFlag(value, name, 0, 86_400),
};

function hostOfUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).hostname || undefined;
  } catch {
    return undefined;
  }
}

/** `--reasons K`: per customer, the K features that moved the score most (docs/analysts.md "Reasons per score"). */
export const reasons: Setting<number> = {
  flags: '--reasons <k>',
  description: 'store, per scored customer, the K manifest features that pushed the score up or down the most (view customer_score_reasons)',
  env: 'SCOREJOB_REASONS',
  blankIsUnset: true,
  forward: 'value',
  parse: (value, name) => parseIntFlag(value, name, 1, 32),
};

/** `--ready-deadline`: how long after a tick a source that is not ready (manifest `source.ready_when`) is waited for quietly. */
export const readyDeadline: Setting<number> = {
  flags: '--ready-deadline <duration>',
  description:
    'with --if-due (or under schedule): a source still not ready (manifest source.ready_when) this long after the tick fails as stale_source (exit 1, cron mails) instead of waiting quietly (exit 75); e.g. 6h, 90m, 2d',
  env: 'SCOREJOB_READY_DEADLINE',
  blankIsUnset: true,
  forward: 'value',
  parse: parseDuration,
};

/** The options of `scorejob run` that `scorejob schedule` takes and passes on to each run. */
export const forwardedRunSettings: readonly Setting<unknown>[] = [
  model,
  chunkSize,
  backend,
  keepRuns,
  maxRejectRatio,
  chunkAttempts,
  outageBudget,
  maxPsi,
  maxFeaturePsi,
  maxSegmentPsi,
  minAuc,
  metricsFile,
  metricsPush,
  progressInterval,
  onPublishCommand,
  reasons,
  ...featureRunSettings,
  workers,
  chunkLease,
  readyDeadline,
];

/** The commander option for a setting (a new one each time: several commands may take it). */
export function option(setting: Setting<unknown>, description = setting.description): Option {
  const o = new Option(setting.flags, description);
  if (setting.env !== undefined) o.env(setting.env);
  if (setting.default !== undefined) o.default(setting.default, setting.default); // shown as is, not JSON-quoted
  return o;
}

/** Adds settings to a command. */
export function addSettings(cmd: Command, settings: readonly Setting<unknown>[]): Command {
  for (const s of settings) cmd.addOption(option(s));
  return cmd;
}

const longFlag = (s: Setting<unknown>) => s.flags.split(/[ ,|]+/).find((f) => f.startsWith('--')) as string;
const key = (s: Setting<unknown>) => new Option(s.flags).attributeName();

/** Where a setting's value came from on this command: `cli`, `env`, `default`, or undefined when unset. */
export function sourceOf(cmd: Command, setting: Setting<unknown>): 'cli' | 'env' | 'default' | undefined {
  const k = key(setting);
  const source = cmd.getOptionValueSource(k) as 'cli' | 'env' | 'default' | undefined;
  if (source === 'env' && setting.blankIsUnset && cmd.getOptionValue(k) === '') return undefined;
  return source;
}

/** The name a message about the setting's value uses: the flag when given, else the variable. */
export function nameOf(cmd: Command, setting: Setting<unknown>): string {
  return sourceOf(cmd, setting) === 'env' ? (setting.env as string) : longFlag(setting);
}

/** The setting's value on this command, checked (a wrong one throws a UsageError naming the flag or the variable). */
export function read<T>(cmd: Command, setting: DefaultedSetting<T>): T;
export function read<T>(cmd: Command, setting: Setting<T>): T | undefined;
export function read<T>(cmd: Command, setting: Setting<T>): T | undefined {
  if (sourceOf(cmd, setting) === undefined) return undefined;
  return setting.parse(cmd.getOptionValue(key(setting)) as string, nameOf(cmd, setting));
}

/**
 * argv for a scheduled child run: the forwarded settings given as flags to `schedule`, paths made
 * absolute. Those from the environment are not repeated: the child reads the same environment.
 */
export function forwardedArgs(cmd: Command, settings: readonly Setting<unknown>[] = forwardedRunSettings): string[] {
  const args: string[] = [];
  for (const s of settings) {
    if (s.forward === undefined || sourceOf(cmd, s) !== 'cli') continue;
    const value = cmd.getOptionValue(key(s)) as string;
    args.push(longFlag(s), s.forward === 'path' ? resolve(value) : value);
  }
  return args;
}
