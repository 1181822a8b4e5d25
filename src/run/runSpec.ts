import type { RunOptions } from '../config.js';
import type { KeyType } from '../keyColumn.js';
import { frozenRunSpec } from '../ledger/runSpec.js';
import type { RunParams } from '../ledger/ledger.js';
import type { LoadedModel } from '../model/load.js';
import { defaultLeaseS } from '../workers/workerCount.js';

/** What is decided under the run lock, after the options were read: the run's part of the spec from there. */
export interface SpecUnderLock {
  /** `--replace-promoted` replaces this promoted run (another model's, published by hand): the run's resumes may too. */
  replacesPromotedRunId?: string | undefined;
  /** Each feature's part (src/features/feature.ts `spec`), in registration order. */
  featureParts: readonly Partial<RunParams>[];
  /** The source key's type (src/run/keyTypeCheck.ts); int8 or absent: not stored, as for every run before uuid and text keys. */
  keyType?: KeyType | undefined;
}

/**
 * The run specification of `scorejob run`, built once from the person's options, the model and what
 * was decided under the lock; frozen and stored as the run's params (resume and workers read it back
 * through the same frozenRunSpec).
 */
export function runSpec(opts: Readonly<RunOptions>, model: LoadedModel, underLock: SpecUnderLock): Readonly<RunParams> {
  const params: RunParams = {
    modelDir: opts.modelDir,
    chunkSize: opts.chunkSize,
    dryRun: opts.dryRun,
    keepRuns: opts.keepRuns,
    maxRejectRatio: opts.maxRejectRatio,
    maxPsi: opts.maxPsi ?? null,
    chunkAttempts: opts.chunkAttempts,
    backendChoice: opts.backend,
    source: { table: model.manifest.source.table, key: model.manifest.source.key },
    onPublishCommand: opts.onPublishCommand ?? null,
    // Only a shared run carries these.
    ...(opts.workers !== undefined ? { workers: opts.workers, chunkLeaseS: opts.chunkLeaseS ?? defaultLeaseS } : {}),
    reasons: null,
    ...(underLock.replacesPromotedRunId !== undefined ? { replacesPromotedRunId: underLock.replacesPromotedRunId } : {}),
  };
  const spec = underLock.featureParts.reduce<RunParams>((spec, part) => ({ ...spec, ...part }), params);
  // After the features' parts: the source an only-new run reads (a view of the source) has the source's key type.
  if (underLock.keyType !== undefined && underLock.keyType !== 'int8') spec.source = { ...spec.source, keyType: underLock.keyType };
  return frozenRunSpec(spec);
}
