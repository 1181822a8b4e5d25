import path from 'node:path';
import type pg from 'pg';
import type { ColumnBatch, ColumnSpec } from '../../columns.js';
import type { BackendChoice } from '../../config.js';
import { copyScores, encodeScores } from '../../db/copyWriter.js';
import { RunFailedError, UsageError } from '../../errors.js';
import type { Ledger, RunParams, RunStats } from '../../ledger/ledger.js';
import { createFeatureCounters, nameRejectKeys, transformBatch, type Reject } from '../../model/features.js';
import type { KeyType } from '../../keyColumn.js';
import { loadModel, type LoadedModel } from '../../model/load.js';
import type { ManifestBand } from '../../model/manifest.js';
import { keepFiniteScores } from '../../model/scorer.js';
import { toFeatureCounts } from '../../stats/featureStats.js';
import { compareScores, type ChallengerComparison } from './comparison.js';
import { ChallengerLedger } from './challengerLedger.js';
import { computeRunStatistics } from '../../publish/runStatistics.js';
import { cutPointsFromHistogram, runBands } from '../../publish/cutPoints.js';
import type { ScoreHistogram } from '../../stats/scoreCuts.js';
import { accumulate, emptyStats, type ScoreStats } from '../../stats/scoreStats.js';
import { combineSidecars, type ChunkSidecar } from '../../chunks/chunkLoop.js';
import type { ChunkRead, JoinScope, RunOutcome, RunScope } from '../feature.js';

/** A run's challenger (`run --challenger DIR`): its loaded model and its sibling run. */
export interface Challenger {
  model: LoadedModel;
  runId: string;
  /**
   * Its scores' histogram for the percentile cut points (src/stats/scoreCuts.ts), counted as its chunks
   * are written. A chunk counted and then rolled back makes the count differ from the run's, and the cut
   * points then come from a sort of its table, as after a resume, or in a shared run where other workers
   * wrote chunks (their scores are not counted here: a worker has no histogram).
   */
  histogram?: ScoreHistogram | undefined;
}

/**
 * Loads the challenger's model (every problem with it is a UsageError naming its files, exit 2) and
 * refuses one that does not read the champion's source table and key: the two are scored from the same
 * decoded chunks. A draft manifest only for a dry run (`allowDraft`). Before anything is written; the challenger
 * is freed with a refusal.
 */
export async function loadChallenger(dir: string, champion: LoadedModel, backend: BackendChoice, allowDraft: boolean): Promise<LoadedModel> {
  const model = await loadModel(dir, { backend, allowDraft }).catch((err: unknown) => {
    // The model's own words, said of the challenger: it is --challenger, not --model, that names it.
    if (err instanceof UsageError) throw new UsageError(`--challenger: ${err.message.replaceAll('(--model DIR)', '(--challenger DIR)')}`, { cause: err });
    throw err;
  });
  const a = champion.manifest.source;
  const b = model.manifest.source;
  if (a.table !== b.table || a.key !== b.key) {
    model.dispose();
    const file = path.join(dir, 'manifest.json');
    throw new UsageError(
      `${file}: the challenger reads ${b.table} by ${b.key}, the champion ${a.table} by ${a.key}; a challenger must score the champion's source (set "source" in ${file} to {"table": "${a.table}", "key": "${a.key}"})`,
    );
  }
  return model;
}

/** The challenger's own run's params: the champion's, with its model, and the champion it belongs to. */
export function challengerRunParams(champion: RunParams, model: LoadedModel, championRunId: string): RunParams {
  return { ...champion, modelDir: model.dir, reasons: null, onlyNew: null, challenger: null, championRunId, onPublishCommand: null };
}

/**
 * The columns a chunk is read with when a challenger rides along: the champion's, in its order (its
 * transform reads the first ones, as without a challenger), then each challenger column the champion
 * does not read the same way. `challengerIndex[f]` is where the challenger's feature f finds its column.
 */
export function unionColumns(champion: readonly ColumnSpec[], challenger: readonly ColumnSpec[]): { columns: ColumnSpec[]; challengerIndex: number[] } {
  const columns = [...champion];
  const same = (x: ColumnSpec, y: ColumnSpec) =>
    x.name === y.name && x.kind === y.kind && JSON.stringify(x.categories ?? null) === JSON.stringify(y.categories ?? null);
  const challengerIndex = challenger.map((spec) => {
    const at = columns.findIndex((c) => same(c, spec));
    if (at >= 0) return at;
    columns.push(spec);
    return columns.length - 1;
  });
  return { columns, challengerIndex };
}

/**
 * A chunk loop's read with a challenger riding along (the coordinator's and every worker's, the same):
 * each chunk is read once with the union of both models' columns, the champion's transform sees its own
 * first ones, and a sidecar scores and writes the challenger's in the chunk's transaction.
 */
export function withChallengerColumns(read: ChunkRead, challenger: Challenger, ledger: Ledger): ChunkRead {
  const union = unionColumns(read.columns, challenger.model.plan.columns);
  const n = read.columns.length;
  const transform = read.transform;
  return {
    columns: union.columns,
    transform: (batch, out, rejects) => transform(firstColumns(batch, n), out, rejects),
    sidecar: combineSidecars([read.sidecar, challengerSidecar(challenger, union.challengerIndex, ledger)]),
  };
}

/** The first `n` columns of a batch, as a batch (per chunk, not per row: a small array). */
export function firstColumns(batch: ColumnBatch, n: number): ColumnBatch {
  return batch.columns.length === n
    ? batch
    : { rows: batch.rows, capacity: batch.capacity, keys: batch.keys, keyBytes: batch.keyBytes, columns: batch.columns.slice(0, n) };
}

/**
 * The chunk loop's sidecar that scores each chunk a second time with the challenger: its own transform of
 * the same decoded columns, its own scores, rejects and chunk row, all written in the champion chunk's
 * transaction (the challenger's scores commit exactly once with the champion's, and a resume redoes both).
 * The input buffers are reused chunk after chunk; the encoded COPY buffer is each chunk's own (a chunk is
 * written while the next is prepared).
 */
export function challengerSidecar(challenger: Challenger, challengerIndex: readonly number[], ledger: Ledger): ChunkSidecar {
  const { model, runId } = challenger;
  const plan = model.plan;
  const table = ledger.runTable(runId);
  let x = new Float32Array(0);
  let keys = new BigInt64Array(0);
  let keyType: KeyType = 'int8';
  let prepared: { encoded: Buffer; scores: Float32Array; scored: number; rejects: Reject[]; stats: Record<string, unknown>; startedAt: Date } | undefined;
  return {
    async prepare(_x, _rows, _scores, batch) {
      const startedAt = new Date();
      const view: ColumnBatch = {
        rows: batch.rows,
        capacity: batch.capacity,
        keys: batch.keys,
        keyBytes: batch.keyBytes,
        columns: challengerIndex.map((i) => batch.columns[i]!),
      };
      if (keys.length < batch.rows) {
        keys = new BigInt64Array(batch.capacity);
        x = new Float32Array(batch.capacity * plan.width);
      }
      const rejects: Reject[] = [];
      const counters = createFeatureCounters(plan);
      const transformed = transformBatch(view, plan, { x, keys }, rejects, counters);
      const scores = transformed > 0 ? await model.scorer.score(x, transformed) : new Float32Array(0);
      const scored = keepFiniteScores(keys, scores, transformed, rejects);
      if (batch.keyBytes) nameRejectKeys(rejects, batch.keyBytes);
      keyType = batch.keyBytes?.type ?? 'int8';
      const stats = emptyStats();
      accumulate(stats, scores, scored);
      prepared = {
        encoded: encodeScores(keys, scores, scored, undefined, batch.keyBytes),
        scores,
        scored,
        rejects,
        stats: { ...stats, features: toFeatureCounts(plan, counters) },
        startedAt,
      };
    },
    seal(_keys, _accepted, chunkNo) {
      const p = prepared;
      prepared = undefined;
      if (!p) throw new Error('internal: the challenger sealed a chunk it did not prepare');
      return async (c) => {
        await copyScores(c, table, p.encoded);
        await ledger.insertRejects(c, runId, p.rejects, keyType);
        const chunk = { chunkNo, scored: p.scored, rejected: p.rejects.length, startedAt: p.startedAt, stats: p.stats as unknown as ScoreStats };
        if (!(await ledger.commitChunk(c, runId, chunk)))
          throw new RunFailedError(`the challenger run ${runId} is no longer running in this process; stopping`, runId);
        challenger.histogram?.add(p.scores, p.scored);
      };
    },
  };
}

/** What the challenger's run row needs of the champion's start. */
export interface ChampionStart {
  runId: string;
  modelName: string;
  params: RunParams;
  trigger: string;
  dryRun: boolean;
  tickAt?: Date | undefined;
  host: string;
  pid: number;
}

/**
 * Creates the challenger's sibling run (kind 'challenger', the champion's model_name, the challenger's
 * version and sha256) and records it on the champion's params, in the transaction that creates the
 * champion: both rows exist, or neither. Returns the challenger's params as recorded on the champion.
 */
export async function createChallengerRun(
  c: pg.ClientBase,
  ledger: Ledger,
  champion: ChampionStart,
  model: LoadedModel,
): Promise<NonNullable<RunParams['challenger']>> {
  const runId = await ledger.createRun(c, {
    trigger: champion.trigger,
    dryRun: champion.dryRun,
    modelName: champion.modelName,
    modelVersion: model.manifest.version,
    modelSha256: model.sha256,
    backend: model.backend,
    params: challengerRunParams(champion.params, model, champion.runId),
    tickAt: champion.tickAt,
    host: champion.host,
    pid: champion.pid,
  });
  const recorded = { modelDir: model.dir, name: model.manifest.name, version: model.manifest.version, sha256: model.sha256, runId };
  const challengers = new ChallengerLedger(ledger);
  await challengers.markChallenger(c, runId, champion.runId);
  await challengers.recordOnChampion(c, champion.runId, recorded);
  return recorded;
}

/**
 * `resume` of a run with a challenger: the challenger's model again, from the dir its params name, refused
 * (exit 2) when its files changed since the run started (their sha256 is on the run).
 */
export async function reloadChallenger(
  params: NonNullable<RunParams['challenger']>,
  champion: LoadedModel,
  backend: BackendChoice,
  run: { runId: string; dryRun: boolean },
): Promise<LoadedModel> {
  const championRunId = run.runId;
  const model = await loadChallenger(params.modelDir, champion, backend, run.dryRun);
  if (model.sha256 !== params.sha256) {
    model.dispose();
    throw new UsageError(
      `the challenger's model files in ${params.modelDir} changed since run ${championRunId} started (sha256 ${model.sha256.slice(0, 12)}… now, ${params.sha256.slice(0, 12)}… then); put them back, or start a new run with \`scorejob run\``,
    );
  }
  return model;
}

/**
 * `scorejob work` on a run with a challenger: the challenger's model from `dir` (the one recorded on the run,
 * or `work --challenger DIR` where the files live elsewhere), refused (exit 2, naming the dir) unless its
 * files are the challenger run's (its model_sha256), as the champion's model is.
 */
export async function joinChallenger(
  dir: string,
  challengerRun: { run_id: string; model_sha256: string; dry_run: boolean },
  join: JoinScope,
): Promise<LoadedModel> {
  const championRunId = join.run.run_id;
  const model = await loadChallenger(dir, join.model, join.backend, challengerRun.dry_run);
  if (model.sha256 !== challengerRun.model_sha256) {
    model.dispose();
    throw new UsageError(
      `the challenger's model files in ${dir} are not run ${championRunId}'s challenger's (run ${challengerRun.run_id}: sha256 ${model.sha256.slice(0, 12)}… here, ${challengerRun.model_sha256.slice(0, 12)}… in the run): give \`--challenger\` the run's challenger model`,
    );
  }
  return model;
}

/** The challenger's bands if its manifest has them, else the champion's: the slot's meaning if it is published. */
export function challengerBands(champion: LoadedModel, challenger: LoadedModel): readonly ManifestBand[] | undefined {
  return challenger.manifest.output.bands ?? champion.manifest.output.bands;
}

/**
 * After the last chunk, once the champion's percentile cut points are recorded: the challenger's statistics
 * (as a run gets them, so that its percentiles and bands are right if it is published) and its comparison
 * with the champion, in one pass over both tables. The
 * challenger's run stays `running` (its status follows the champion's: see finishChallenger).
 */
export async function challengerStatistics(s: RunScope, challenger: Challenger): Promise<{ stats: RunStats; comparison: ChallengerComparison }> {
  const { client: c, ledger, runId: championRunId, model: champion } = s;
  const dryRun = s.params.dryRun;
  const chunks = await ledger.getChunks(c, challenger.runId);
  const notDone = chunks.filter((ch) => ch.status !== 'done');
  if (notDone.length > 0)
    throw new RunFailedError(
      `${notDone.length} chunk(s) of the challenger run ${challenger.runId} are not done although the champion's are (first: chunk ${notDone[0]!.chunk_no})`,
      championRunId,
    );
  const statistics = await computeRunStatistics({ client: c, ledger, runId: challenger.runId, plan: challenger.model.plan, chunks });
  const bands = runBands(challengerBands(champion, challenger.model));
  const run = await ledger.getRun(c, challenger.runId);
  const scored = Number(run?.rows_scored ?? 0);
  if (!dryRun && scored > 0) {
    const cuts = await cutPointsFromHistogram({ client: c, ledger, runId: challenger.runId, histogram: challenger.histogram, total: scored });
    await ledger.publications.recordRanks(c, challenger.runId, bands, cuts?.cuts);
  }
  const championBands = runBands(champion.manifest.output.bands);
  const challengers = new ChallengerLedger(ledger);
  const cuts = { champion: await challengers.decileCuts(c, championRunId), challenger: await challengers.decileCuts(c, challenger.runId) };
  const rows = await challengers.compare(
    c,
    championRunId,
    challenger.runId,
    cuts,
    championBands && bands && { champion: championBands.bounds, challenger: bands.bounds },
  );
  const comparison = compareScores(
    { run_id: challenger.runId, model_name: challenger.model.manifest.name, model_version: challenger.model.manifest.version },
    rows,
  );
  return { stats: { ...statistics }, comparison };
}

/**
 * The challenger's run takes its champion's outcome: succeeded (never published by the run), failed or
 * interrupted with the champion's error. A dry run's challenger scores are dropped with the champion's.
 */
export async function finishChallenger(s: RunScope, challengerRunId: string, outcome: RunOutcome & { stats?: RunStats | undefined }): Promise<void> {
  const championRunId = s.runId;
  const error = outcome.error === undefined ? null : `its champion run ${championRunId} ${outcome.status}: ${outcome.error}`;
  await s.ledger.finishRun(s.client, challengerRunId, outcome.status, { error, errorKind: outcome.errorKind ?? null, stats: outcome.stats });
}
