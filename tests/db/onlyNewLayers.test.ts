import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { forcePublish } from '../../src/publish/forcePublish.js';
import { rollback } from '../../src/publish/rollback.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, runInProcess, silentLog, testConfig } from '../helpers/run.js';

/** customer_id → score of a query's rows; fails on a customer listed twice. */
async function scoresOf(t: TestDatabase, sql: string, params: unknown[] = []): Promise<Map<string, number>> {
  const { rows } = await t.pool.query<{ k: string; s: number }>(sql, params);
  const map = new Map(rows.map((r) => [r.k, r.s]));
  expect(map.size).toBe(rows.length);
  return map;
}

const published = (t: TestDatabase) => scoresOf(t, 'SELECT customer_id::text k, score s FROM scoring.customer_scores');
const ownRows = async (t: TestDatabase, runId: string) =>
  Number((await t.pool.query<{ n: string }>('SELECT count(*) n FROM scoring.score_data WHERE run_id = $1', [runId])).rows[0]!.n);
const tableExists = async (t: TestDatabase, runId: string) =>
  (await t.pool.query<{ t: string | null }>(`SELECT to_regclass('scoring.score_data_' || $1)::text t`, [runId])).rows[0]!.t !== null;

const addCustomers = (t: TestDatabase, offset: number, n: number) =>
  t.pool.query(
    `INSERT INTO customers SELECT customer_id + $1, tenure_months, orders_12m, revenue_12m, avg_order_value, days_since_last_order, support_tickets_12m,
            discount_share, returns_12m, web_sessions_30d, email_open_rate, segment, region, channel, is_subscriber, has_app, now()
       FROM customers WHERE customer_id < 1000000 ORDER BY customer_id LIMIT $2`,
    [offset, n],
  );

/**
 * Issue 19, `run --only-new` as a layer (sql/013_layers.sql): the run's own table holds only what it
 * scored (and what it carries from an earlier layer); every other score is read from the full run below
 * it. Whatever the chain of layers, readers see what a full run would publish.
 */
describe('incremental runs are layers over a full run', () => {
  let t: TestDatabase;
  let model: string;
  /** The full run every layer lies on. */
  let full: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 2000, seed: 47, nullFraction: 0 });
    await t.pool.query(`ALTER TABLE customers ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()`);
    model = await modelCopy((m) => (m.source = { table: 'customers', key: 'customer_id', updated_column: 'updated_at' }));
    full = (await runInProcess(t, { modelDir: model, chunkSize: 500, keepRuns: 10 })).runId;
  });
  afterAll(async () => t.drop());

  it('a chain of two layers publishes what a full run would, storing only the rescored rows, with history, changes and percentiles through the layers', async () => {
    // Layer 1: 30 new, 20 deleted, 15 changed.
    await addCustomers(t, 10_000_000, 30);
    await t.pool.query(`DELETE FROM customers WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY customer_id LIMIT 20 OFFSET 100)`);
    await t.pool.query(
      `UPDATE customers SET orders_12m = orders_12m + 9, updated_at = now() WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY customer_id LIMIT 15 OFFSET 700)`,
    );
    const first = await runInProcess(t, { modelDir: model, chunkSize: 20, onlyNew: true, keepRuns: 10 });
    expect(first.rowsScored).toBe(45);
    expect(await ownRows(t, first.runId)).toBe(45);
    expect((await t.pool.query('SELECT under_run_id::text u, rows_carried::int n FROM scoring.score_layers WHERE run_id = $1', [first.runId])).rows).toEqual([
      { u: full, n: 2000 - 20 - 15 },
    ]);
    const afterFirst = await published(t);

    // Layer 2, on layer 1: new again, one of layer 1's new customers and one carried customer deleted,
    // one of layer 1's changed customers and one carried customer changed again.
    await addCustomers(t, 20_000_000, 12);
    const firstNew = (
      await t.pool.query<{ k: string }>('SELECT min(customer_id)::text k FROM customers WHERE customer_id >= 10000000 AND customer_id < 20000000')
    ).rows[0]!.k;
    const carriedGone = (await t.pool.query<{ k: string }>('SELECT customer_id::text k FROM customers ORDER BY customer_id LIMIT 1 OFFSET 300')).rows[0]!.k;
    const firstChanged = (await t.pool.query<{ k: string }>('SELECT customer_id::text k FROM customers ORDER BY customer_id LIMIT 1 OFFSET 700')).rows[0]!.k;
    const carriedChanged = (await t.pool.query<{ k: string }>('SELECT customer_id::text k FROM customers ORDER BY customer_id LIMIT 1 OFFSET 1500')).rows[0]!.k;
    await t.pool.query('DELETE FROM customers WHERE customer_id = ANY($1::int8[])', [[firstNew, carriedGone]]);
    await t.pool.query(`UPDATE customers SET orders_12m = orders_12m + 5, updated_at = now() WHERE customer_id = ANY($1::int8[])`, [
      [firstChanged, carriedChanged],
    ]);
    const second = await runInProcess(t, { modelDir: model, chunkSize: 20, onlyNew: true, keepRuns: 10 });
    expect(second.rowsScored).toBe(14);
    // The layer lies on the full run, not on layer 1: its own table has its 14 and layer 1's rows it carries.
    expect((await t.pool.query('SELECT under_run_id::text u FROM scoring.score_layers WHERE run_id = $1', [second.runId])).rows).toEqual([{ u: full }]);
    expect(await ownRows(t, second.runId)).toBe(14 + (45 - 1 - 1));

    const now = await published(t);
    const source = new Set((await t.pool.query<{ k: string }>('SELECT customer_id::text k FROM customers')).rows.map((r) => r.k));
    expect(new Set(now.keys())).toEqual(source);
    // Every score is what a full run of today's source gives (the model is deterministic, the carried rows unchanged).
    const c = await t.pool.connect();
    try {
      await migrate(c, 'reference');
    } finally {
      c.release();
    }
    await runInProcess(t, { modelDir: model, chunkSize: 500 }, 'reference');
    expect(now).toEqual(await scoresOf(t, 'SELECT customer_id::text k, score s FROM reference.customer_scores'));
    expect(now.get(firstChanged)).not.toBe(afterFirst.get(firstChanged));
    expect(now.get(carriedChanged)).not.toBe(afterFirst.get(carriedChanged));

    // History lists the layered runs whole; changes_since compares two layered runs customer by customer.
    expect(await scoresOf(t, 'SELECT customer_id::text k, score s FROM scoring.customer_score_history WHERE run_id = $1', [second.runId])).toEqual(now);
    expect(await scoresOf(t, 'SELECT customer_id::text k, score s FROM scoring.customer_score_history WHERE run_id = $1', [first.runId])).toEqual(afterFirst);
    const counts = `SELECT count(*) FILTER (WHERE NOT is_removed)::int n, count(*) FILTER (WHERE is_new)::int is_new, count(*) FILTER (WHERE delta <> 0)::int moved,
                          count(*) FILTER (WHERE is_removed)::int removed, min(previous_run_id)::text prev, min(run_id)::text run`;
    const since = await t.pool.query(`${counts} FROM scoring.customer_score_changes_since($1)`, [first.runId]);
    expect(since.rows[0]).toEqual({ n: source.size, is_new: 12, moved: 2, removed: 2, prev: first.runId, run: second.runId });
    // The view compares a layer with the publication before the full run it lies on: here that run was the model's first, so everybody is new.
    const changes = await t.pool.query(`${counts} FROM scoring.customer_score_changes`);
    expect(changes.rows[0]).toEqual({ n: source.size, is_new: source.size, moved: 0, removed: 0, prev: null, run: second.runId });
    // Percentiles are over every score the run publishes, carried ones included.
    const cuts = await t.pool.query<{ same: boolean }>(
      `SELECT r.score_cuts = (SELECT percentile_cont((SELECT array_agg(i / 100.0) FROM generate_series(1, 99) i)) WITHIN GROUP (ORDER BY score) FROM scoring.customer_scores) AS same
         FROM scoring.score_runs r WHERE r.run_id = $1`,
      [second.runId],
    );
    expect(cuts.rows[0]).toEqual({ same: true });
    // They start from the histogram the full run stored (every score of it counted), not from a pass over its table.
    const stored = await t.pool.query('SELECT (SELECT sum(n)::int FROM unnest(counts) n) AS n FROM scoring.score_histograms WHERE run_id = $1', [full]);
    expect(stored.rows).toEqual([{ n: 2000 }]);
    expect(
      (await t.pool.query('SELECT count(*)::int n FROM scoring.score_histograms WHERE run_id = ANY($1::int8[])', [[first.runId, second.runId]])).rows[0],
    ).toEqual({ n: 0 });
    const inHistory = await t.pool.query('SELECT run_id::text, in_history FROM scoring.published_runs WHERE run_id = ANY($1::int8[]) ORDER BY run_id', [
      [first.runId, second.runId],
    ]);
    expect(inHistory.rows).toEqual([
      { run_id: first.runId, in_history: true },
      { run_id: second.runId, in_history: true },
    ]);
    // The run's frozen copy of the rows it rescored and its view of the source are gone with it.
    expect((await t.pool.query(`SELECT count(*)::int n FROM pg_class WHERE relname LIKE 'only\\_new\\_%'`)).rows[0]).toEqual({ n: 0 });
  });

  it('a layer with nobody to rescore is still in history; a rollback to a layer brings its scores back whole', async () => {
    const layered = await runInProcess(t, { modelDir: model, onlyNew: true, keepRuns: 10 });
    expect(layered.rowsScored).toBe(0);
    expect(await ownRows(t, layered.runId)).toBeGreaterThan(0); // the previous layer's rescored rows it carries
    const before = await published(t);
    const inHistory = await t.pool.query('SELECT in_history FROM scoring.published_runs WHERE run_id = $1', [layered.runId]);
    expect(inHistory.rows).toEqual([{ in_history: true }]);

    await addCustomers(t, 30_000_000, 5);
    const next = await runInProcess(t, { modelDir: model, chunkSize: 500, keepRuns: 10 });
    expect(next.rowsScored).toBe(before.size + 5);
    await rollback({ config: testConfig(t), log: silentLog }, { runId: layered.runId, reason: 'test' });
    expect(await published(t)).toEqual(before);
  });

  it('retention keeps the full run a kept layer lies on, drops it once no kept layer does, and forgets dropped layers', async () => {
    await addCustomers(t, 40_000_000, 3);
    const base = (await runInProcess(t, { modelDir: model, chunkSize: 500, keepRuns: 1 })).runId;
    await addCustomers(t, 50_000_000, 3);
    const layer = (await runInProcess(t, { modelDir: model, onlyNew: true, keepRuns: 1 })).runId;
    // --keep-runs 1 keeps the published layer, and so the full run under it.
    expect(await tableExists(t, layer)).toBe(true);
    expect(await tableExists(t, base)).toBe(true);
    const before = await published(t);
    expect(before.size).toBe(Number((await t.pool.query<{ n: string }>('SELECT count(*) n FROM customers')).rows[0]!.n));

    const next = (await runInProcess(t, { modelDir: model, chunkSize: 500, keepRuns: 1 })).runId;
    expect(await tableExists(t, next)).toBe(true);
    expect(await tableExists(t, layer)).toBe(false);
    expect(await tableExists(t, base)).toBe(false);
    expect((await t.pool.query('SELECT count(*)::int n FROM scoring.score_layers WHERE run_id = $1', [layer])).rows[0]).toEqual({ n: 0 });
    expect((await t.pool.query('SELECT count(*)::int n FROM scoring.score_layer_hidden WHERE run_id = $1', [layer])).rows[0]).toEqual({ n: 0 });
  });

  it('a layer a gate stopped keeps no copy of the source rows, and publishes whole by force', async () => {
    await addCustomers(t, 70_000_000, 6);
    // tenure_months has no fill: this new customer is rejected, over a --max-reject-ratio of 0.
    await t.pool.query('UPDATE customers SET tenure_months = NULL WHERE customer_id = (SELECT max(customer_id) FROM customers)');
    const gated = await runInProcess(t, { modelDir: model, onlyNew: true, maxRejectRatio: 0, keepRuns: 10 }).catch((e: unknown) => e);
    expect(gated).toMatchObject({ exitCode: 1 });
    const runId = (await t.pool.query<{ id: string }>('SELECT max(run_id)::text id FROM scoring.score_runs')).rows[0]!.id;
    expect((await t.pool.query(`SELECT count(*)::int n FROM pg_class WHERE relname LIKE 'only\\_new\\_%'`)).rows[0]).toEqual({ n: 0 });
    await forcePublish({ config: testConfig(t), log: silentLog }, runId, { force: true, reason: 'reviewed the layer' });
    const now = await published(t);
    const source = (await t.pool.query<{ k: string }>('SELECT customer_id::text k FROM customers WHERE tenure_months IS NOT NULL')).rows.map((r) => r.k);
    expect(new Set(now.keys())).toEqual(new Set(source));
    expect(await ownRows(t, runId)).toBeLessThan(now.size);
  });

  it('a dry run leaves no layer, no frozen rows and no view behind', async () => {
    await addCustomers(t, 60_000_000, 4);
    const dry = await runInProcess(t, { modelDir: model, onlyNew: true, dryRun: true, keepRuns: 10 });
    expect(dry.rowsScored).toBe(4);
    expect((await t.pool.query('SELECT count(*)::int n FROM scoring.score_layers WHERE run_id = $1', [dry.runId])).rows[0]).toEqual({ n: 0 });
    expect((await t.pool.query(`SELECT count(*)::int n FROM pg_class WHERE relname LIKE 'only\\_new\\_%'`)).rows[0]).toEqual({ n: 0 });
    expect(await tableExists(t, dry.runId)).toBe(false);
  });
});
