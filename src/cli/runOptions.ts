import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { shippedModelDir, type ObserveOptions, type RunOptions } from '../config.js';
import type { ObserveDeps } from '../observe/observer.js';
import {
  backend,
  chunkAttempts,
  chunkLease,
  chunkSize,
  keepRuns,
  maxFeaturePsi,
  maxPsi,
  maxSegmentPsi,
  maxRejectRatio,
  minAuc,
  metricsFile,
  metricsPush,
  model,
  onPublishCommand,
  progressInterval,
  read,
  readyDeadline,
  reasons,
  trigger,
  workers,
} from './options.js';
import { featureCli } from '../features/settings.js';
import type { Setting } from '../setting.js';

/** The options of a run from a command's settings (flag, then environment, then default), checked once, each message naming the flag or the variable. */
export function readRunOptions(cmd: Command, over: { trigger?: RunOptions['trigger']; dryRun?: boolean } = {}): RunOptions {
  return Object.freeze({
    modelDir: read(cmd, model) ?? shippedModelDir,
    chunkSize: read(cmd, chunkSize),
    trigger: over.trigger ?? read(cmd, trigger),
    dryRun: over.dryRun ?? cmd.opts<{ dryRun: boolean }>().dryRun,
    backend: read(cmd, backend),
    keepRuns: read(cmd, keepRuns),
    maxRejectRatio: read(cmd, maxRejectRatio),
    chunkAttempts: read(cmd, chunkAttempts),
    maxPsi: read(cmd, maxPsi),
    maxFeaturePsi: read(cmd, maxFeaturePsi),
    maxSegmentPsi: read(cmd, maxSegmentPsi),
    minAuc: cmd.options.some((o) => o.long === '--min-auc') ? read(cmd, minAuc) : undefined,
    // Only where the command takes it (`run`); `schedule` passes it on to each run.
    onPublishCommand: cmd.options.some((o) => o.long === '--on-publish-command') ? read(cmd, onPublishCommand) : undefined,
    workers: cmd.options.some((o) => o.long === '--workers') ? read(cmd, workers) : undefined,
    chunkLeaseS: cmd.options.some((o) => o.long === '--chunk-lease') ? read(cmd, chunkLease) : undefined,
    reasons: cmd.options.some((o) => o.long === '--reasons') ? read(cmd, reasons) : undefined,
    readyDeadlineMs: cmd.options.some((o) => o.long === '--ready-deadline') ? read(cmd, readyDeadline) : undefined,
    ...featureRunOptions(cmd),
  });
}

/** What the features' own settings set in the run's options, each read only where the command takes it. */
function featureRunOptions(cmd: Command): Partial<RunOptions> {
  const takes = (s: Setting<string>) => cmd.options.some((o) => o.flags === s.flags);
  return Object.assign(
    {},
    ...featureCli.map((f) => (f.run ? f.run.options(takes(f.run.setting) ? read(cmd, f.run.setting) : undefined) : {})),
  ) as Partial<RunOptions>;
}

/** `--metrics-file` and `--progress-interval` (the latter only on the commands that run chunks), checked before anything is written. */
export function readObserveOptions(cmd: Command): ObserveOptions {
  const hasInterval = cmd.options.some((o) => o.long === '--progress-interval');
  const hasPush = cmd.options.some((o) => o.long === '--metrics-push');
  return Object.freeze({
    metricsFile: read(cmd, metricsFile),
    metricsPush: hasPush ? read(cmd, metricsPush) : undefined,
    progressIntervalS: hasInterval ? read(cmd, progressInterval) : 0,
  });
}

/** The live progress line on stderr when it is a terminal, else progress log lines; the metrics file. */
export function observeDeps(o: ObserveOptions): ObserveDeps {
  return {
    metricsFile: o.metricsFile,
    metricsPush: o.metricsPush,
    progress: { tty: process.stderr.isTTY ? process.stderr : undefined, intervalMs: o.progressIntervalS * 1000 },
  };
}

/** The metrics file, if one is set and valid (for a refusal: a bad value of its own writes nothing). */
export function metricsFileOf(cmd: Command): string | undefined {
  try {
    return read(cmd, metricsFile);
  } catch {
    return undefined;
  }
}

/** The Pushgateway, if one is set and valid (for a refusal). */
export function metricsPushOf(cmd: Command): string | undefined {
  try {
    return read(cmd, metricsPush);
  } catch {
    return undefined;
  }
}

/** The model a refused run was for: its manifest's name if the file says one, else the folder's name. */
export async function modelNameOf(cmd: Command): Promise<string> {
  let dir = shippedModelDir;
  try {
    dir = read(cmd, model) ?? shippedModelDir;
    const name = (JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { name?: unknown }).name;
    if (typeof name === 'string' && name !== '') return name;
  } catch {
    // a missing or broken manifest (or a bad --model) is what was refused: name the folder
  }
  return basename(dir.replace(/\/+$/, '')) || 'unknown';
}
