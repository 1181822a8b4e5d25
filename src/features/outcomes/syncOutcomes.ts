import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { databaseOf, type Pool } from '../../db/pool.js';
import { withClient, withTransaction } from '../../db/sql.js';
import { SqlState, sqlStateOf } from '../../db/sqlstate.js';
import { schemaKeyType } from '../../ledger/keyTypes.js';
import { UsageError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { parseManifest, type Manifest } from '../../model/manifest.js';
import type { ManifestOutcomes } from '../../model/outcomesManifest.js';
import { expectedCalibrationError, topBinLift, type CalibrationBin } from '../../stats/classification.js';
import { figuresSql, outcomeRowsSql, signatureSql } from './outcomeSql.js';
import { OutcomeStore, type BandFigures, type DerivedFigures, type KeptRun } from './outcomeStore.js';

/** Options of `scorejob outcomes sync`. */
export interface SyncOptions {
  schema: string;
  /** The model directory whose manifest declares `outcomes`; its name selects the runs. */
  modelDir: string;
  /** Outcomes up to this time count (`--as-of`); default now. */
  asOf?: Date | undefined;
  log?: Logger | undefined;
}

/** What a sync did for one run. */
export interface RunSync {
  runId: string;
  /** Share of the horizon elapsed at as_of, 0 to 1. */
  maturity: number;
  /** `synced`: figures (re)computed; `unchanged`: nothing new matured since the last sync. */
  outcome: 'synced' | 'unchanged';
  withOutcome?: number | undefined;
  auc?: number | null | undefined;
}

/** Reads and validates `dir/manifest.json`; a manifest without `outcomes` is a usage error saying what to add. */
export async function readOutcomesManifest(dir: string): Promise<Manifest & { outcomes: ManifestOutcomes }> {
  const file = path.join(dir, 'manifest.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--model: "${dir}" has no readable manifest.json (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const manifest = parseManifest(json, file);
  if (manifest.outcomes === undefined) {
    throw new UsageError(`${file}: outcomes is missing: add e.g. "outcomes": {"table": "customer_outcomes", "horizon": "90 days"} (docs/outcomes.md)`);
  }
  return manifest as Manifest & { outcomes: ManifestOutcomes };
}

/**
 * Joins every kept run of the model to its matured outcomes and stores the figures, one transaction per
 * run. A run whose outcome rows and maturity are unchanged since its last sync is left as it is, so adding
 * matured outcomes changes only the runs whose window they fall in.
 */
export async function syncOutcomes(pool: Pool, opts: SyncOptions): Promise<RunSync[]> {
  const manifest = await readOutcomesManifest(opts.modelDir);
  const asOf = opts.asOf ?? new Date();
  const store = new OutcomeStore(opts.schema);
  const rows = outcomeRowsSql(manifest.outcomes);
  return withClient(pool, async (c) => {
    const keys = await schemaKeyType(c, opts.schema);
    if (keys !== 'bigint')
      throw new UsageError(`outcomes sync is not supported yet with ${keys} keys (schema ${opts.schema}): outcomes are joined by an integer key`);
    const runs = await store.keptRuns(c, manifest.name);
    const results: RunSync[] = [];
    for (const run of runs) {
      const result = await syncRun(c, { store, run, manifest, rows, asOf });
      opts.log?.info(
        { run_id: run.runId, maturity: result.maturity, outcome: result.outcome, with_outcome: result.withOutcome, auc: result.auc },
        `run ${run.runId}: ${Math.round(result.maturity * 100)}% mature, ${result.outcome}`,
      );
      results.push(result);
    }
    return results;
  });
}

interface RunStep {
  store: OutcomeStore;
  run: KeptRun;
  manifest: Manifest & { outcomes: ManifestOutcomes };
  rows: string;
  asOf: Date;
}

async function syncRun(c: pg.ClientBase, step: RunStep): Promise<RunSync> {
  const { store, run, manifest, rows, asOf } = step;
  const horizon = manifest.outcomes.horizon;
  const params = [run.runId, asOf, horizon];
  return withTransaction(c, async () => {
    // One sync writes a run at a time: a second sync of the same schema waits here instead of colliding.
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))', ['scorejob outcomes', store.schema]);
    const sig = (
      await outcomeQuery(c, manifest.outcomes, () =>
        c.query<{ maturity: number; mature: boolean; signature: string }>(signatureSql(store.schema, rows), params),
      )
    ).rows[0];
    if (sig === undefined) throw new Error(`run ${run.runId} vanished from ${store.schema}.score_runs during the sync`);
    // The definition of an outcome is part of what the figures were computed from: a changed manifest recomputes.
    const definition = createHash('sha256').update(`${rows}\n${manifest.outcomes.absent}`).digest('hex').slice(0, 16);
    const signature = `${sig.signature}:${definition}`;
    const last = await store.lastSync(c, run.runId);
    const horizonText = (await c.query<{ h: string }>('SELECT $1::interval::text AS h', [horizon])).rows[0]?.h;
    if (last !== undefined && last.signature === signature && last.horizon === horizonText)
      return { runId: run.runId, maturity: sig.maturity, outcome: 'unchanged' };
    // The figures sort and hash one row per distinct score and band (about two per customer): in memory
    // rather than spilled to disk at the default 4 MB, for this transaction only.
    await c.query(`SET LOCAL work_mem = '256MB'`);
    const figures = (
      await outcomeQuery(c, manifest.outcomes, () => c.query<BandFigures>(figuresSql(store.schema, rows), [...params, manifest.outcomes.absent === 'negative']))
    ).rows;
    if (figures.some((f) => f.bands_overlap))
      throw new Error(`run ${run.runId}: its bands' score ranges overlap, so per-band figures cannot be computed from the run's one ordering`);
    const derived = figures.map((f) => ({ ...withoutEmptyDeciles(f), ...derive(f) }));
    await store.replace(
      c,
      { runId: run.runId, modelName: manifest.name, publishedAt: run.publishedAt, horizon, asOf, maturity: sig.maturity, signature },
      derived,
    );
    const whole = figures.find((f) => f.whole);
    return { runId: run.runId, maturity: sig.maturity, outcome: 'synced', withOutcome: Number(whole?.with_outcome ?? 0), auc: whole?.auc ?? null };
  });
}

/** The deciles that hold customers: a segment with fewer than ten customers with an outcome has empty ones. */
function withoutEmptyDeciles(f: BandFigures): BandFigures {
  const keep = (f.decile_customers ?? []).map((n, i) => (n !== null && Number(n) > 0 ? i : -1)).filter((i) => i >= 0);
  const pick = <T>(a: T[] | null) => (a === null || keep.length === 0 ? null : keep.map((i) => a[i] as T));
  return { ...f, decile_customers: pick(f.decile_customers), decile_predicted: pick(f.decile_predicted), decile_observed: pick(f.decile_observed) };
}

/** ECE and top-decile lift from the ten bins the statement returns. */
function derive(raw: BandFigures): DerivedFigures {
  const f = withoutEmptyDeciles(raw);
  const bins: CalibrationBin[] = (f.decile_customers ?? []).map((n, i) => ({
    customers: Number(n),
    predicted: f.decile_predicted?.[i] ?? 0,
    observed: f.decile_observed?.[i] ?? 0,
  }));
  const ece = expectedCalibrationError(bins);
  const lift = topBinLift(bins);
  return { ece: Number.isFinite(ece) ? ece : null, topDecileLift: Number.isFinite(lift) ? lift : null };
}

/** A missing outcomes table or column is the manifest's to fix: one line naming the field and the database. */
async function outcomeQuery<T>(c: pg.ClientBase, o: ManifestOutcomes, q: () => Promise<T>): Promise<T> {
  try {
    return await q();
  } catch (err) {
    const state = sqlStateOf(err);
    const what = o.table !== undefined ? `outcomes.table "${o.table}"` : 'outcomes.query';
    if (
      state === SqlState.undefinedTable ||
      state === SqlState.undefinedColumn ||
      state === SqlState.cannotCoerce ||
      state === SqlState.datatypeMismatch ||
      state === SqlState.insufficientPrivilege
    ) {
      throw new UsageError(
        `${what} in database ${databaseOf(c)}: ${(err as Error).message} (the manifest's outcomes names key "${o.key}", event_time "${o.eventTime}", label "${o.label}"; fix them or the table, docs/outcomes.md)`,
        { cause: err },
      );
    }
    if (state?.startsWith('42') === true) throw new UsageError(`${what} in database ${databaseOf(c)}: ${(err as Error).message}`, { cause: err });
    throw err;
  }
}
