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
import { outcomeFigures } from '../../stats/outcomeFigures.js';
import { readJoinedScores } from './joinedScores.js';
import { outcomeRowsSql, runScoresCopySql, signatureSql, windowOutcomesCopySql } from './outcomeSql.js';
import { OutcomeStore, type KeptRun } from './outcomeStore.js';

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
        c.query<{ maturity: number; mature: boolean; opened: string; closed: string; signature: string }>(signatureSql(store.schema, rows), params),
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
    // The statements only scan; JIT compiling them costs more than it saves.
    await c.query('SET LOCAL jit = off');
    const shape = await store.runShape(c, run.runId);
    const joined = await outcomeQuery(c, manifest.outcomes, () =>
      readJoinedScores(c, {
        scoresSql: runScoresCopySql(store.schema, run.runId),
        outcomesSql: windowOutcomesCopySql(rows, sig),
        bandNames: shape.bandNames,
        bandBounds: shape.bandBounds,
        expectedRows: shape.rows,
        absentIsNegative: manifest.outcomes.absent === 'negative' && sig.mature,
      }),
    );
    const figures = outcomeFigures(joined);
    await store.replace(
      c,
      { runId: run.runId, modelName: manifest.name, publishedAt: run.publishedAt, horizon, asOf, maturity: sig.maturity, signature },
      figures,
    );
    const whole = figures.find((f) => f.band === null);
    return { runId: run.runId, maturity: sig.maturity, outcome: 'synced', withOutcome: whole?.withOutcome ?? 0, auc: whole?.auc ?? null };
  });
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
