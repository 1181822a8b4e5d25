import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatRunDetail } from '../../src/report/formatRuns.js';
import { showRun } from '../../src/report/runsReport.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdChunk } from '../helpers/holdChunk.js';
import { resumeInProcess, runInProcess } from '../helpers/run.js';
import { ledgerState, expectRefusedUnchanged, seedWithRejects } from '../helpers/state.js';

const manifestColumns = [
  'tenure_months',
  'orders_12m',
  'revenue_12m',
  'avg_order_value',
  'days_since_last_order',
  'support_tickets_12m',
  'discount_share',
  'returns_12m',
  'web_sessions_30d',
  'email_open_rate',
  'segment',
  'region',
  'channel',
  'is_subscriber',
  'has_app',
];

/** Every published customer has exactly `k` reasons, ranked 1..k by |contribution|, and no one else has any. */
async function expectReasonsForEveryScore(t: TestDatabase, runId: string, k: number): Promise<void> {
  const { rows } = await t.pool.query<{
    scored: number;
    reasons: number;
    customers: number;
    bad_rank: number;
    bad_order: number;
    bad_feature: number;
    strangers: number;
  }>(
    `SELECT (SELECT count(*)::int FROM scoring.customer_scores) AS scored,
            count(*)::int AS reasons,
            count(DISTINCT customer_id)::int AS customers,
            count(*) FILTER (WHERE rank NOT BETWEEN 1 AND $2)::int AS bad_rank,
            count(*) FILTER (WHERE abs(contribution) > abs(prev))::int AS bad_order,
            count(*) FILTER (WHERE NOT (feature = ANY ($3)) OR feature IS NULL)::int AS bad_feature,
            (SELECT count(*)::int FROM scoring.customer_score_reasons r WHERE NOT EXISTS (SELECT 1 FROM scoring.customer_scores s WHERE s.customer_id = r.customer_id)) AS strangers
       FROM (SELECT *, lag(contribution) OVER (PARTITION BY customer_id ORDER BY rank) AS prev FROM scoring.customer_score_reasons) r
      WHERE run_id = $1`,
    [runId, k, manifestColumns],
  );
  const r = rows[0]!;
  expect(r.scored).toBeGreaterThan(0);
  expect(r).toEqual({ scored: r.scored, reasons: r.scored * k, customers: r.scored, bad_rank: 0, bad_order: 0, bad_feature: 0, strangers: 0 });
}

async function reasonTables(t: TestDatabase): Promise<string[]> {
  const { rows } = await t.pool.query<{ n: string }>(
    `SELECT tablename n FROM pg_tables WHERE schemaname = 'scoring' AND tablename LIKE 'score\\_reasons\\_%' ORDER BY 1`,
  );
  return rows.map((r) => r.n);
}

describe('reasons per score (run --reasons K)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedWithRejects(t, 3000, 23); // rejects in every chunk: they get no reasons
  });
  afterAll(async () => t.drop());

  it('stores, for every scored customer of the published run, K ranked reasons (none for rejects), readable in customer_score_reasons', async () => {
    const r = await runInProcess(t, { chunkSize: 500, reasons: 3 });
    expect(r.rowsRejected).toBeGreaterThan(0);
    await expectReasonsForEveryScore(t, r.runId, 3);
    const params = await t.pool.query<{ reasons: { k: number; space: string; features: string[] } }>(
      "SELECT params->'reasons' AS reasons FROM scoring.score_runs WHERE run_id = $1",
      [r.runId],
    );
    expect(params.rows[0]?.reasons).toMatchObject({ k: 3, space: 'logit', features: manifestColumns });
    const measured = await t.pool.query('SELECT DISTINCT measured_in, model_name FROM scoring.customer_score_reasons');
    expect(measured.rows).toEqual([{ measured_in: 'logit', model_name: 'customer-value' }]);
    // runs show (text, JSON and HTML are built from this): K, the unit, and each feature's count as first reason.
    const c = await t.pool.connect();
    try {
      const detail = await showRun(c, 'scoring', r.runId);
      expect(detail.analyst).toMatchObject({ kind: 'full', reasons: { k: 3, measured_in: 'logit' } });
      expect(detail.analyst?.reasons?.first_reason.reduce((n, x) => n + x.customers, 0)).toBe(r.rowsScored);
      expect(formatRunDetail(detail)).toMatch(/Reasons: 3 per customer, in the logit/);
    } finally {
      c.release();
    }
  });

  it('a chunk lost before its commit loses its reasons with its scores; the resumed run has every reason exactly once', async () => {
    const hold = await holdChunk(t, 3);
    let runId: string;
    try {
      const outcome = runInProcess(t, { chunkSize: 500, chunkAttempts: 1, reasons: 2 }).then(
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
    const partial = await t.pool.query<{ scores: number; reasons: number }>(
      `SELECT (SELECT count(*)::int FROM scoring."score_data_${runId}") AS scores, (SELECT sum(cardinality(features))::int FROM scoring."score_reasons_${runId}") AS reasons`,
    );
    expect(partial.rows[0]!.reasons).toBe(partial.rows[0]!.scores * 2);
    const resumed = await resumeInProcess(t, runId);
    expect(resumed.runId).toBe(runId);
    await expectReasonsForEveryScore(t, runId, 2);
  });

  it('reasons are kept and dropped with their run: retention and a dry run drop them; a run without --reasons has none', async () => {
    const dry = await runInProcess(t, { chunkSize: 1000, reasons: 1, dryRun: true });
    expect(await reasonTables(t)).not.toContain(`score_reasons_${dry.runId}`);
    const plain = await runInProcess(t, { chunkSize: 1000, keepRuns: 1 });
    expect(await reasonTables(t)).toEqual([]);
    const none = await t.pool.query('SELECT count(*)::int n FROM scoring.customer_score_reasons');
    expect(none.rows[0]).toEqual({ n: 0 });
    expect(plain.rowsScored).toBeGreaterThan(0);
  });

  it('--reasons 0 is refused with one line naming the flag (exit 2), nothing written', async () => {
    const before = await ledgerState(t);
    const r = await runCliInProcess(['run', '--reasons', '0'], t.env);
    await expectRefusedUnchanged(t, before, r, /--reasons/);
  });

  it('--reasons K above the number of manifest features is refused with one line naming both (exit 2), nothing written; the K it advises runs', async () => {
    const before = await ledgerState(t);
    const r = await runCliInProcess(['run', '--reasons', '16'], t.env);
    await expectRefusedUnchanged(t, before, r, /^scorejob: --reasons 16: the model's manifest \(\S+manifest\.json\) has 15 features; give --reasons 1 to 15$/m);
    const ok = await runCliInProcess(['run', '--reasons', '15', '--chunk-size', '5000'], t.env);
    expect(ok.code).toBe(0);
    const { rows } = await t.pool.query<{ run_id: string }>('SELECT run_id::text FROM scoring.score_runs ORDER BY started_at DESC LIMIT 1');
    await expectReasonsForEveryScore(t, rows[0]!.run_id, 15);
  });
});
