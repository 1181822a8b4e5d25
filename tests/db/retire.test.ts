import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { ExitCode, LockedError, NothingToDoError, UsageError } from '../../src/errors.js';
import { publishedChannel } from '../../src/ledger/publications.js';
import { retireModel } from '../../src/publish/retire.js';
import { rollback } from '../../src/publish/rollback.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdRunLock } from '../helpers/hold.js';
import { modelCopy, runInProcess, silentLog, testConfig } from '../helpers/run.js';
import { waitUntil } from '../helpers/waitUntil.js';

type Event = Record<string, unknown>;

/**
 * `scorejob model retire NAME`: the model's rows leave customer_scores and every reader view at once,
 * another model's stay; the retire is recorded and announced; history keeps the kept runs; the model's
 * next run (or a rollback) publishes it again.
 */
describe('model retire', () => {
  let t: TestDatabase;
  let listener: pg.Client;
  const heard: { event: Event; modelRows: number | undefined }[] = [];
  const value: string[] = [];
  let expansionRun: string;
  let strict: string;
  const ctx = () => ({ config: testConfig(t), log: silentLog });

  /** Rows of each reader view per model. */
  const views = ['customer_scores', 'customer_score_changes', 'customer_score_reasons', 'customer_score_rejects'] as const;
  const viewRows = async (model: string): Promise<Record<(typeof views)[number], number>> => {
    const counts = await Promise.all(
      views.map(async (v) => (await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM scoring.${v} WHERE model_name = $1`, [model])).rows[0]?.n ?? -1),
    );
    return Object.fromEntries(views.map((v, i) => [v, counts[i] as number])) as Record<(typeof views)[number], number>;
  };
  const historyRuns = async (model: string): Promise<string[]> =>
    (
      await t.pool.query<{ r: string }>('SELECT DISTINCT run_id::text r FROM scoring.customer_score_history WHERE model_name = $1 ORDER BY 1', [model])
    ).rows.map((r) => r.r);
  const publicationCount = async (): Promise<number> =>
    (await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.score_publications')).rows[0]?.n ?? -1;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 400, seed: 21, nullFraction: 0.02 });
    await t.pool.query(`CREATE VIEW accounts AS SELECT customer_id AS account_id, * FROM customers WHERE customer_id % 2 = 0`);
    const expansion = await modelCopy((m) => {
      m.name = 'account-expansion';
      m.source = { table: 'public.accounts', key: 'account_id' };
    });
    listener = new pg.Client({ connectionString: t.url });
    await listener.connect();
    // As a listener would: look at the model's rows as soon as it hears of the event, on another connection.
    listener.on('notification', (n) => {
      const entry: { event: Event; modelRows: number | undefined } = { event: JSON.parse(n.payload ?? '{}') as Event, modelRows: undefined };
      heard.push(entry);
      void t.pool
        .query<{ n: number }>('SELECT count(*)::int n FROM scoring.customer_scores WHERE model_name = $1', [entry.event.model_name])
        .then((r) => (entry.modelRows = r.rows[0]?.n));
    });
    await listener.query(`LISTEN ${publishedChannel}`);
    // Without a fill for one feature, the NULLs there are rejects: customer_score_rejects has rows of the model.
    strict = await modelCopy((m) => delete (m.features as { fill?: unknown }[]).find((f) => f.fill !== undefined)?.fill);
    value.push((await runInProcess(t, { modelDir: strict, chunkSize: 100, maxRejectRatio: 1 })).runId);
    value.push((await runInProcess(t, { modelDir: strict, chunkSize: 100, maxRejectRatio: 1, reasons: 2 })).runId);
    expansionRun = (await runInProcess(t, { chunkSize: 100, maxRejectRatio: 1, modelDir: expansion })).runId;
    await waitUntil('the publish notifications', async () => heard.length === 3 && heard.every((h) => h.modelRows !== undefined), 5000);
  });
  afterAll(async () => {
    await listener?.end();
    await t.drop();
  });

  it('without --confirm NAME (or with another name) it says what it would do and does nothing (exit 2)', async () => {
    const before = await viewRows('customer-value');
    expect(before.customer_scores).toBeGreaterThan(350);
    expect(before.customer_score_changes).toBe(before.customer_scores);
    expect(before.customer_score_reasons).toBe(before.customer_scores * 2);
    expect(before.customer_score_rejects).toBeGreaterThan(0);
    const refusal = retireModel(ctx(), { modelName: 'customer-value' });
    await expect(refusal).rejects.toBeInstanceOf(UsageError);
    await expect(refusal).rejects.toThrow(
      `not confirmed, nothing done: retiring model customer-value takes its ${before.customer_scores} rows (run ${value[1]}) out of scoring.customer_scores and the reader views on ${t.db.user}@${t.db.host}:${t.db.port}/${t.name}; to do it: scorejob model retire customer-value --confirm customer-value`,
    );
    await expect(retireModel(ctx(), { modelName: 'customer-value', confirm: 'account-expansion' })).rejects.toThrow(
      /^--confirm names account-expansion, not customer-value, nothing done/,
    );
    expect(await viewRows('customer-value')).toEqual(before);
    expect(await publicationCount()).toBe(3);
    expect(heard).toHaveLength(3);
  });

  it('an unknown model: exit 2 naming the models that exist', async () => {
    const unknown = retireModel(ctx(), { modelName: 'customer-valeu', confirm: 'customer-valeu' });
    await expect(unknown).rejects.toBeInstanceOf(UsageError);
    await expect(unknown).rejects.toThrow(/^there is no model customer-valeu in schema scoring on \S+ \(its models: account-expansion, customer-value\)$/);
  });

  it('while a run of the model holds its lock: exit 75, nothing done', async () => {
    const held = await holdRunLock(t);
    try {
      const started = performance.now();
      const locked = retireModel(ctx(), { modelName: 'customer-value', confirm: 'customer-value' });
      await expect(locked).rejects.toBeInstanceOf(LockedError);
      await expect(locked).rejects.toMatchObject({ exitCode: ExitCode.locked });
      // At once: naming the holder needs no connection the command and its lock already hold.
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      await held.release();
    }
    expect((await viewRows('customer-value')).customer_scores).toBeGreaterThan(0);
    expect(await publicationCount()).toBe(3);
  });

  it("confirmed: the model's rows leave every reader view at once, the other model's stay; recorded, announced, history kept", async () => {
    const expansionBefore = await viewRows('account-expansion');
    const rows = (await viewRows('customer-value')).customer_scores;
    const done = await retireModel(ctx(), { modelName: 'customer-value', confirm: 'customer-value', reason: 'replaced by account-expansion' });
    expect(done.rows).toBe(rows);
    expect(await viewRows('customer-value')).toEqual({ customer_scores: 0, customer_score_changes: 0, customer_score_reasons: 0, customer_score_rejects: 0 });
    expect(await viewRows('account-expansion')).toEqual(expansionBefore);
    expect((await t.pool.query('SELECT model_name, run_id::text FROM scoring.published_run')).rows).toEqual([
      { model_name: 'account-expansion', run_id: expansionRun },
    ]);

    const ledger = await t.pool.query(
      `SELECT run_id::text, previous_run_id::text, kind, reason, is_current, in_history FROM scoring.published_runs WHERE model_name = 'customer-value' ORDER BY publication_id`,
    );
    expect(ledger.rows.at(-1)).toEqual({
      run_id: value[1],
      previous_run_id: value[1],
      kind: 'retire',
      reason: 'replaced by account-expansion',
      is_current: false,
      in_history: true,
    });
    expect(ledger.rows.filter((r: { is_current: boolean }) => r.is_current)).toEqual([]);
    const current = await t.pool.query('SELECT model_name, run_id::text FROM scoring.published_runs WHERE is_current');
    expect(current.rows).toEqual([{ model_name: 'account-expansion', run_id: expansionRun }]);

    await waitUntil('the retire notification', async () => heard.length === 4 && heard[3]?.modelRows !== undefined, 5000);
    const retire = heard[3] as { event: Event; modelRows: number };
    expect(retire.event).toMatchObject({
      schema: 'scoring',
      model_name: 'customer-value',
      model_version: '1.0.0',
      run_id: null,
      previous_run_id: value[1],
      rows: 0,
      kind: 'retire',
      rollback: false,
    });
    expect(Date.parse(String(retire.event.published_at))).not.toBeNaN();
    // Heard at the commit: the rows are already gone for the listener.
    expect(retire.modelRows).toBe(0);

    expect(await historyRuns('customer-value')).toEqual(value);
    const kept = await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM scoring.customer_score_history WHERE run_id = $1`, [value[1]]);
    expect(kept.rows[0]?.n).toBe(rows);
  });

  it('again: exit 0, one line saying it is already retired, nothing recorded', async () => {
    const again = retireModel(ctx(), { modelName: 'customer-value' });
    await expect(again).rejects.toBeInstanceOf(NothingToDoError);
    await expect(again).rejects.toMatchObject({ exitCode: ExitCode.ok });
    await expect(again).rejects.toThrow(
      new RegExp(`^model customer-value is already retired \\(run ${value[1]} left scoring.customer_scores on \\S+ at \\S+, by \\S+\\); nothing to do$`),
    );
    expect(await publicationCount()).toBe(4);
  });

  it('--only-new has nothing to carry forward from a retired model: exit 2, saying a full run comes first', async () => {
    const runsBefore = (await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.score_runs')).rows[0]?.n;
    const onlyNew = runInProcess(t, { modelDir: strict, chunkSize: 100, maxRejectRatio: 1, onlyNew: true });
    await expect(onlyNew).rejects.toBeInstanceOf(UsageError);
    await expect(onlyNew).rejects.toThrow(/^--only-new needs a published run of model customer-value to carry forward; run a full `scorejob run` first$/);
    expect((await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.score_runs')).rows[0]?.n).toBe(runsBefore);
  });

  it('rollback --model-name of a retired model puts the retired run back (and only that model)', async () => {
    const event = await rollback(ctx(), { modelName: 'customer-value', reason: 'retired by mistake' });
    expect(event).toMatchObject({ run_id: value[1], previous_run_id: null, kind: 'rollback' });
    const shown = await t.pool.query(`SELECT DISTINCT run_id::text r FROM scoring.customer_scores WHERE model_name = 'customer-value'`);
    expect(shown.rows).toEqual([{ r: value[1] }]);
    // Nothing was shown before it: every customer of the run is new to customer_score_changes.
    const changes = await t.pool.query(
      `SELECT count(*)::int n, bool_and(is_new) all_new FROM scoring.customer_score_changes WHERE model_name = 'customer-value'`,
    );
    expect(changes.rows[0]).toEqual({ n: (await viewRows('customer-value')).customer_scores, all_new: true });
    const current = await t.pool.query(`SELECT run_id::text, kind FROM scoring.published_runs WHERE is_current AND model_name = 'customer-value'`);
    expect(current.rows).toEqual([{ run_id: value[1], kind: 'rollback' }]);
  });

  it("the model's next run publishes it again, and that run's --keep-runs counts the retired run among the kept", async () => {
    await retireModel(ctx(), { modelName: 'customer-value', confirm: 'customer-value' });
    expect((await viewRows('customer-value')).customer_scores).toBe(0);
    const next = await runInProcess(t, { modelDir: strict, chunkSize: 100, maxRejectRatio: 1, keepRuns: 2 });
    const shown = await t.pool.query(`SELECT run_id::text r, count(*)::int n FROM scoring.customer_scores WHERE model_name = 'customer-value' GROUP BY 1`);
    expect(shown.rows).toEqual([{ r: next.runId, n: next.rowsScored }]);
    expect((await t.pool.query(`SELECT run_id::text, previous_run_id FROM scoring.published_run WHERE model_name = 'customer-value'`)).rows).toEqual([
      { run_id: next.runId, previous_run_id: null },
    ]);
    const current = await t.pool.query(
      `SELECT run_id::text, kind, previous_run_id FROM scoring.published_runs WHERE is_current AND model_name = 'customer-value'`,
    );
    expect(current.rows).toEqual([{ run_id: next.runId, kind: 'full', previous_run_id: null }]);
    expect(await historyRuns('customer-value')).toEqual([value[1], next.runId]);
    await waitUntil('the notifications', async () => heard.length === 7, 5000);
    expect(heard.map((h) => `${String(h.event.model_name)} ${String(h.event.kind)}`).slice(3)).toEqual([
      'customer-value retire',
      'customer-value rollback',
      'customer-value retire',
      'customer-value publish',
    ]);
    expect((await viewRows('account-expansion')).customer_scores).toBeGreaterThan(0);
  });
});
