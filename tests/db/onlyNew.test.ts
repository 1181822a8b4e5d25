import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { UsageError } from '../../src/errors.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { showRun } from '../../src/report/runsReport.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdChunk } from '../helpers/holdChunk.js';
import { modelCopy, resumeInProcess, runInProcess } from '../helpers/run.js';

interface Row {
  score: number;
  run_id: string;
  scored_at: string;
}

async function published(t: TestDatabase): Promise<Map<string, Row>> {
  const { rows } = await t.pool.query<Row & { k: string }>('SELECT customer_id::text k, score, run_id::text, scored_at::text FROM scoring.customer_scores');
  const map = new Map(rows.map((r) => [r.k, { score: r.score, run_id: r.run_id, scored_at: r.scored_at }]));
  expect(map.size).toBe(rows.length); // nobody twice
  return map;
}

async function scoresOfRun(t: TestDatabase, runId: string): Promise<Map<string, number>> {
  const { rows } = await t.pool.query<{ k: string; s: number }>('SELECT customer_id::text k, score s FROM scoring.score_data WHERE run_id = $1', [runId]);
  return new Map(rows.map((r) => [r.k, r.s]));
}

async function finishedAt(t: TestDatabase, runId: string): Promise<string> {
  return (await t.pool.query<{ f: string }>('SELECT finished_at::text f FROM scoring.score_runs WHERE run_id = $1', [runId])).rows[0]!.f;
}

/**
 * `run --only-new`: new customers (and, with source.updated_column, changed ones) are scored, every other
 * customer's score is carried forward from the published run, deleted customers are gone, nobody twice.
 */
describe('incremental runs (run --only-new)', () => {
  let t: TestDatabase;
  let model: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 3000, seed: 31, nullFraction: 0 });
    await t.pool.query(`ALTER TABLE customers ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()`);
    model = await modelCopy((m) => (m.source = { table: 'customers', key: 'customer_id', updated_column: 'updated_at' }));
  });
  afterAll(async () => t.drop());

  it('is refused (exit 2, one line) while the model has no published run to carry forward', async () => {
    const c = await t.pool.connect();
    try {
      await migrate(c, 'fresh');
    } finally {
      c.release();
    }
    const err = await runInProcess(t, { modelDir: model, onlyNew: true }, 'fresh').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/^--only-new needs a published run of model customer-value to carry forward; run a full `scorejob run` first$/);
  });

  it('rescores new and changed customers like a full run, carries the others unchanged (with their run and time), drops deleted ones, nobody twice', async () => {
    const base = await runInProcess(t, { modelDir: model, chunkSize: 1000 });
    const before = await published(t);
    await t.pool.query(`DELETE FROM customers WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY customer_id LIMIT 40)`);
    await t.pool.query(
      `INSERT INTO customers SELECT customer_id + 50000000, tenure_months, orders_12m, revenue_12m, avg_order_value, days_since_last_order, support_tickets_12m,
              discount_share, returns_12m, web_sessions_30d, email_open_rate, segment, region, channel, is_subscriber, has_app, now()
         FROM customers ORDER BY customer_id DESC LIMIT 60`,
    );
    await t.pool.query(
      `UPDATE customers SET tenure_months = tenure_months + 37, updated_at = now() WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY customer_id LIMIT 25 OFFSET 500)`,
    );
    const changed = new Set(
      (await t.pool.query<{ k: string }>('SELECT customer_id::text k FROM customers ORDER BY customer_id LIMIT 25 OFFSET 500')).rows.map((r) => r.k),
    );

    const inc = await runInProcess(t, { modelDir: model, chunkSize: 30, onlyNew: true });
    expect(inc.rowsScored).toBe(85);
    expect(inc.carried).toEqual({ rows: 3000 - 40 - 25, baseRunId: base.runId });
    const ledger = await t.pool.query('SELECT kind, base_run_id::text, rows_carried::int FROM scoring.score_runs WHERE run_id = $1', [inc.runId]);
    expect(ledger.rows[0]).toEqual({ kind: 'only_new', base_run_id: base.runId, rows_carried: 3000 - 40 - 25 });
    const c = await t.pool.connect();
    try {
      expect((await showRun(c, 'scoring', inc.runId)).analyst).toMatchObject({ kind: 'only_new', base_run_id: base.runId, rows_carried: 2935 });
    } finally {
      c.release();
    }
    const after = await published(t);
    const source = new Set((await t.pool.query<{ k: string }>('SELECT customer_id::text k FROM customers')).rows.map((r) => r.k));
    expect(new Set(after.keys())).toEqual(source); // every current customer, no deleted one

    const reference = await runInProcess(t, { modelDir: model, chunkSize: 1000 });
    const fullScores = await scoresOfRun(t, reference.runId);
    const baseAt = await finishedAt(t, base.runId);
    const incAt = await finishedAt(t, inc.runId);
    let rescored = 0;
    for (const [k, row] of after) {
      if (!before.has(k) || changed.has(k)) {
        rescored++;
        expect(row).toEqual({ score: fullScores.get(k), run_id: inc.runId, scored_at: incAt });
      } else {
        expect(row).toEqual({ ...before.get(k), run_id: base.runId, scored_at: baseAt });
      }
    }
    expect(rescored).toBe(85);
    // The run's view of its source is gone with the run: the source's owner may drop or retype its columns.
    expect((await t.pool.query(`SELECT count(*)::int n FROM pg_views WHERE viewname LIKE 'only\\_new\\_source\\_%'`)).rows[0]).toEqual({ n: 0 });
  });

  it('with no new customer, publishes the whole table carried forward; a carried score keeps the run that computed it through a second incremental run', async () => {
    const base = (await t.pool.query<{ id: string }>(`SELECT run_id::text id FROM scoring.published_run WHERE model_name = 'customer-value'`)).rows[0]!.id;
    const first = await runInProcess(t, { modelDir: model, onlyNew: true });
    expect(first.rowsScored).toBe(0);
    const second = await runInProcess(t, { modelDir: model, onlyNew: true });
    const runs = await t.pool.query('SELECT DISTINCT run_id::text FROM scoring.customer_scores');
    expect(runs.rows).toEqual([{ run_id: base }]);
    const current = await t.pool.query<{ id: string }>(`SELECT run_id::text id FROM scoring.published_run WHERE model_name = 'customer-value'`);
    expect(current.rows[0]!.id).toBe(second.runId);
  });

  it('resumes: a chunk lost before its commit is rescored at the resume, and the carried scores are there once', async () => {
    const before = await published(t);
    await t.pool.query(
      `INSERT INTO customers SELECT customer_id + 90000000, tenure_months, orders_12m, revenue_12m, avg_order_value, days_since_last_order, support_tickets_12m,
              discount_share, returns_12m, web_sessions_30d, email_open_rate, segment, region, channel, is_subscriber, has_app, now()
         FROM customers ORDER BY customer_id LIMIT 90`,
    );
    const hold = await holdChunk(t, 2);
    let runId: string;
    try {
      const outcome = runInProcess(t, { modelDir: model, chunkSize: 30, chunkAttempts: 1, onlyNew: true }).then(
        () => 'succeeded',
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      );
      await hold.reached();
      await hold.endJobSessions(['writer']);
      expect(await outcome).toMatch(/failed: connection .* lost/);
      runId = (await t.pool.query<{ id: string }>('SELECT max(run_id)::text id FROM scoring.score_runs')).rows[0]?.id as string;
    } finally {
      await hold.release();
    }
    expect((await t.pool.query(`SELECT count(*)::int n FROM pg_views WHERE viewname LIKE 'only\\_new\\_source\\_%'`)).rows[0]).toEqual({ n: 0 });
    const resumed = await resumeInProcess(t, runId);
    expect(resumed.rowsScored).toBe(90);
    const after = await published(t);
    const source = (await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM customers')).rows[0]!.n;
    expect(after.size).toBe(source);
    expect([...after.values()].filter((r) => r.run_id === runId)).toHaveLength(90);
    for (const [k, row] of before) expect(after.get(k)).toEqual(row);
  });
});
