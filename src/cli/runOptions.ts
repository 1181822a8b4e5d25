import type { Command } from 'commander';
import { shippedModelDir, type ObserveOptions, type RunOptions } from '../config.js';
import type { ObserveDeps } from '../observe/observer.js';
import { backend, chunkAttempts, chunkSize, keepRuns, maxPsi, maxRejectRatio, metricsFile, model, progressInterval, read, trigger } from './options.js';

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
  });
}

/** `--metrics-file` and `--progress-interval` (the latter only on the commands that run chunks), checked before anything is written. */
export function readObserveOptions(cmd: Command): ObserveOptions {
  const hasInterval = cmd.options.some((o) => o.long === '--progress-interval');
  return Object.freeze({ metricsFile: read(cmd, metricsFile), progressIntervalS: hasInterval ? read(cmd, progressInterval) : 0 });
}

/** The live progress line on stderr when it is a terminal, else progress log lines; the metrics file. */
export function observeDeps(o: ObserveOptions): ObserveDeps {
  return { metricsFile: o.metricsFile, progress: { tty: process.stderr.isTTY ? process.stderr : undefined, intervalMs: o.progressIntervalS * 1000 } };
}
