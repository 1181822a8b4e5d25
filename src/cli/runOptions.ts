import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import {
  backendChoices,
  defaultModelDir,
  parseChoice,
  parseIntFlag,
  parseNumberFlag,
  settingName,
  triggers,
  type BackendChoice,
  type RunOptions,
  type Trigger,
} from '../config.js';
import type { TickFlags } from '../schedule/tickFlags.js';

/** The flags of `scorejob run` as commander hands them over (strings, unchecked). */
export interface RunFlags extends TickFlags {
  model?: string;
  chunkSize?: string;
  trigger: string;
  dryRun: boolean;
  backend?: string;
  keepRuns?: string;
  maxRejectRatio?: string;
  maxPsi?: string;
  chunkAttempts: string;
  metricsFile?: string;
  progressInterval?: string;
  onPublishCommand?: string;
}

/** The shipped model, wherever scorejob is installed; a given directory is taken relative to the working directory. */
export function modelDir(dir: string | undefined): string {
  const given = dir ?? process.env.SCOREJOB_MODEL_DIR;
  return given ? resolve(given) : fileURLToPath(new URL(`../../${defaultModelDir}/`, import.meta.url));
}

/** Flag > environment > default, validated once, each message naming the flag. */
export function runOptions(flags: RunFlags, env = process.env): RunOptions {
  return Object.freeze({
    modelDir: modelDir(flags.model),
    chunkSize: parseIntFlag(flags.chunkSize ?? env.SCOREJOB_CHUNK_SIZE ?? '50000', settingName(flags.chunkSize, '--chunk-size', 'SCOREJOB_CHUNK_SIZE'), 1, 10_000_000),
    trigger: parseChoice(flags.trigger, '--trigger', triggers) as Trigger,
    dryRun: flags.dryRun,
    backend: parseChoice(flags.backend ?? env.SCOREJOB_BACKEND ?? 'auto', settingName(flags.backend, '--backend', 'SCOREJOB_BACKEND'), backendChoices) as BackendChoice,
    keepRuns: parseIntFlag(flags.keepRuns ?? env.SCOREJOB_KEEP_RUNS ?? '12', settingName(flags.keepRuns, '--keep-runs', 'SCOREJOB_KEEP_RUNS'), 1, 10_000),
    maxRejectRatio: parseNumberFlag(flags.maxRejectRatio ?? env.SCOREJOB_MAX_REJECT_RATIO ?? '0.01', settingName(flags.maxRejectRatio, '--max-reject-ratio', 'SCOREJOB_MAX_REJECT_RATIO'), 0, 1),
    chunkAttempts: parseIntFlag(flags.chunkAttempts, '--chunk-attempts', 1, 100),
    onPublishCommand: flags.onPublishCommand ?? env.SCOREJOB_ON_PUBLISH_COMMAND,
    maxPsi: flags.maxPsi !== undefined || env.SCOREJOB_MAX_PSI ? parseNumberFlag((flags.maxPsi ?? env.SCOREJOB_MAX_PSI) as string, settingName(flags.maxPsi, '--max-psi', 'SCOREJOB_MAX_PSI'), 0, 1000) : undefined,
  });
}
