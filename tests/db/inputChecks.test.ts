import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { ExitCode, RunFailedError, UsageError, toExitCode } from '../../src/errors.js';
import { checksOfRun } from '../../src/features/input-checks/recordChecks.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, resumeInProcess, runInProcess } from '../helpers/run.js';

/**
 * Input checks (manifest `checks`) against real PostgreSQL: before the first chunk, in the run's
 * snapshot, the row count and each feature's NULL rate against the last published full run, and SQL
 * assertions. A failed check fails the run (kind input_check) with its figures, writes no score table
 * and leaves customer_scores as it was; `--skip-check NAME --reason TEXT` is recorded on the run.
 */
describe('input checks before the first chunk', () => {
  let t: TestDatabase;
  let model: string;
  let firstRun: string;

  const checks = {
    row_count: {},
    null_rate: { max_change_pp: 5 },
    assertions: [{ name: 'no_negative_tenure', sql: 'SELECT customer_id FROM customers WHERE tenure_months < 0 ORDER BY customer_id' }],
  };

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 3000, seed: 3 });
    // A copy of the source to restore between tests: each test breaks it its own way.
    await t.pool.query('CREATE TABLE customers_orig AS TABLE customers');
    model = await modelCopy((m) => void (m.checks = checks));
    const first = await runInProcess(t, { modelDir: model });
    firstRun = first.runId;
  }, 120_000);
  afterAll(async () => t.drop());

  beforeEach(async () => {
    await t.pool.query('TRUNCATE customers; INSERT INTO customers SELECT * FROM customers_orig');
  });

  const failedRun = async (run: Promise<unknown>): Promise<{ runId: string; error: string; kind: string; table: string | null }> => {
    const err = await run.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RunFailedError);
    expect(toExitCode(err)).toBe(ExitCode.runFailed);
    const runId = (err as RunFailedError).runId!;
    const { rows } = await t.pool.query<{ error: string; error_kind: string; t: string | null }>(
      `SELECT error, error_kind, to_regclass('scoring.score_data_' || run_id)::text AS t FROM scoring.score_runs WHERE run_id = $1`,
      [runId],
    );
    return { runId, error: rows[0]!.error, kind: rows[0]!.error_kind, table: rows[0]!.t };
  };
  const published = async () =>
    (await t.pool.query<{ run_id: string; n: string }>('SELECT min(run_id)::text AS run_id, count(*) AS n FROM scoring.customer_scores')).rows[0];

  it('the first run has nothing to compare with: it passes and records every check', async () => {
    const c = await t.pool.connect();
    try {
      const results = await checksOfRun(c, 'scoring', firstRun);
      expect(results.map((r) => [r.name, r.outcome])).toEqual([
        ['row_count', 'passed'],
        ['null_rate', 'passed'],
        ['no_negative_tenure', 'passed'],
      ]);
      expect(results[0]?.detail).toBe('3,000 rows; no published full run to compare with');
    } finally {
      c.release();
    }
  });

  it('30% of the source missing: the run fails with kind input_check and the figures, no score table, customer_scores unchanged', async () => {
    await t.pool.query('DELETE FROM customers WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY customer_id LIMIT 900)');
    const f = await failedRun(runInProcess(t, { modelDir: model }));
    expect(f.kind).toBe('input_check');
    expect(f.error).toBe(`input check failed: row_count: 2,100 rows vs 3,000 in run ${firstRun} (−30.0%), limit 20%`);
    expect(f.table).toBeNull();
    expect(await published()).toEqual({ run_id: firstRun, n: '3000' });
  }, 60_000);

  it("a feature's NULL rate moved more than the limit: fails naming the feature and both shares", async () => {
    await t.pool.query('UPDATE customers SET email_open_rate = NULL WHERE customer_id % 10 = 0');
    const f = await failedRun(runInProcess(t, { modelDir: model }));
    expect(f.kind).toBe('input_check');
    expect(f.error).toMatch(
      new RegExp(`^input check failed: null_rate: email_open_rate \\d+\\.\\d% NULL vs \\d+\\.\\d% in run ${firstRun} \\(\\+\\d+\\.\\d pp\\), limit 5 pp$`),
    );
    expect(f.table).toBeNull();
  }, 60_000);

  it('an assertion with offending rows: fails naming it, their count and the first 10 keys; after the fix, a resume passes and publishes', async () => {
    const first12 = (await t.pool.query<{ id: string }>('SELECT customer_id::text AS id FROM customers ORDER BY customer_id LIMIT 12')).rows.map((r) => r.id);
    await t.pool.query('UPDATE customers SET tenure_months = -1 WHERE customer_id = ANY($1::int8[])', [first12]);
    const f = await failedRun(runInProcess(t, { modelDir: model }));
    expect(f.error).toBe(`input check failed: no_negative_tenure: 12 offending rows, keys ${first12.slice(0, 10).join(', ')}, …`);
    // The advice of the failure: fix the source, then resume (the checks run again).
    await t.pool.query('UPDATE customers SET tenure_months = 0 WHERE customer_id = ANY($1::int8[])', [first12]);
    const resumed = await resumeInProcess(t, f.runId);
    expect(resumed.status).toBe('succeeded');
    expect((await published())?.run_id).toBe(f.runId);
  }, 90_000);

  it('--skip-check NAME --reason TEXT scores the input as it is, and the run records the skip and the reason', async () => {
    await t.pool.query('DELETE FROM customers WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY customer_id LIMIT 900)');
    const r = await runInProcess(t, { modelDir: model, skipChecks: { names: ['row_count'], reason: 'CRM archived closed accounts (ticket 881)' } });
    expect(r.status).toBe('succeeded');
    const { rows } = await t.pool.query<{ params: { skipChecks: unknown } }>('SELECT params FROM scoring.score_runs WHERE run_id = $1', [r.runId]);
    expect(rows[0]?.params.skipChecks).toEqual([{ name: 'row_count', reason: 'CRM archived closed accounts (ticket 881)' }]);
    const c = await t.pool.connect();
    try {
      const results = await checksOfRun(c, 'scoring', r.runId);
      expect(results[0]).toMatchObject({ name: 'row_count', outcome: 'skipped', reason: 'CRM archived closed accounts (ticket 881)' });
      expect(results.slice(1).map((x) => x.outcome)).toEqual(['passed', 'passed']);
    } finally {
      c.release();
    }
    expect((await published())?.n).toBe('2100');
  }, 60_000);

  it('--skip-check of a check the manifest does not declare, or without --reason, is refused before anything is written', async () => {
    const before = (await t.pool.query('SELECT count(*) FROM scoring.score_runs')).rows[0]?.count;
    await expect(runInProcess(t, { modelDir: model, skipChecks: { names: ['row_cont'], reason: 'x' } })).rejects.toThrow(
      /^--skip-check row_cont: \S+manifest\.json declares no check row_cont; its checks: row_count, null_rate, no_negative_tenure$/,
    );
    await expect(runInProcess(t, { modelDir: model, skipChecks: { names: ['row_count'], reason: undefined } })).rejects.toThrow(UsageError);
    expect((await t.pool.query('SELECT count(*) FROM scoring.score_runs')).rows[0]?.count).toBe(before);
  });
});
