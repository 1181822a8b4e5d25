import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { ExitCode, RunFailedError, toExitCode } from '../../src/errors.js';
import type { SegmentDriftSummary } from '../../src/ledger/ledger.js';
import { forcePublish } from '../../src/publish/forcePublish.js';
import { formatRunDetail } from '../../src/report/formatRuns.js';
import { showRun } from '../../src/report/runsReport.js';
import { featureReports } from '../../src/features/reports.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, resumeInProcess, runInProcess, silentLog, testConfig } from '../helpers/run.js';

const customers = 20_000;
const chunkSize = 4_000;

interface SegmentRow {
  value: string | null;
  value_kind: string;
  rows_scored: string;
  rows_rejected: string;
  share: number;
  mean_score: number | null;
  band_shares: Record<string, number> | null;
  psi_previous: number | null;
  previous_run_id: string | null;
  mover_rank: string;
}

/**
 * Per-segment drift against real PostgreSQL (docs/models.md "Segments"): with the manifest's `segments`,
 * every chunk counts each segment's rows, rejects, scores and bands in its transaction; the run stores each
 * segment with its PSI against the previous published run, `runs show` and the reader view list them, and
 * `--max-segment-psi` stops the publish naming the segments over it.
 */
describe('segments', () => {
  let t: TestDatabase;
  let model: string;
  let firstRun: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers, seed: 12 });
    model = await modelCopy((m) => {
      m.segments = ['region'];
      m.output.bands = [{ name: 'low', below: 0.2 }, { name: 'mid', below: 0.5 }, { name: 'high' }];
    });
    firstRun = (await runInProcess(t, { modelDir: model, chunkSize })).runId;
  }, 120_000);
  afterAll(async () => t.drop());

  const segmentsOf = async (runId: string) =>
    (
      await t.pool.query<SegmentRow>(
        `SELECT value, value_kind, rows_scored, rows_rejected, share, mean_score, band_shares, psi_previous, previous_run_id, mover_rank
           FROM scoring.segment_drift WHERE run_id = $1 AND segment = 'region' ORDER BY value NULLS LAST`,
        [runId],
      )
    ).rows;

  it("each region's rows, rejects, share, mean score and band shares are those of the run's scores and rejects", async () => {
    const expected = await t.pool.query<{ value: string | null; scored: string; rejected: string; mean: number | null; low: number | null }>(
      `SELECT c.region AS value, count(s.customer_id) AS scored, count(r.customer_id) AS rejected, avg(s.score)::float8 AS mean,
              (count(*) FILTER (WHERE s.score < 0.2))::float8 / nullif(count(s.customer_id), 0) AS low
         FROM customers c
         LEFT JOIN scoring.customer_scores s ON s.customer_id = c.customer_id
         LEFT JOIN scoring.score_rejects r ON r.customer_id = c.customer_id AND r.run_id = $1
        GROUP BY c.region ORDER BY c.region NULLS LAST`,
      [firstRun],
    );
    const got = await segmentsOf(firstRun);
    expect(got.map((g) => g.value)).toEqual(expected.rows.map((e) => e.value));
    expect(got.at(-1)!.value_kind).toBe('null');
    for (const [i, e] of expected.rows.entries()) {
      const g = got[i]!;
      expect(g.rows_scored, String(e.value)).toBe(e.scored);
      expect(g.rows_rejected, String(e.value)).toBe(e.rejected);
      expect(g.share).toBeCloseTo((Number(e.scored) + Number(e.rejected)) / customers, 12);
      if (e.mean === null) expect(g.mean_score).toBeNull();
      else expect(g.mean_score).toBeCloseTo(e.mean, 5);
      if (e.low !== null) expect(g.band_shares!.low).toBeCloseTo(e.low, 12);
      expect(g.psi_previous).toBeNull();
    }
    expect(got.reduce((n, g) => n + Number(g.rows_scored) + Number(g.rows_rejected), 0)).toBe(customers);
  });

  it('one region drifted inside an unchanged total: its PSI is high and --max-segment-psi stops the publish naming it only', async () => {
    // The north's customers look long gone (their churn scores rise); the others are untouched, the row count too.
    await t.pool.query(`UPDATE customers SET days_since_last_order = 900 WHERE region = 'north'`);
    const err = await runInProcess(t, { modelDir: model, chunkSize, maxSegmentPsi: 0.1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunFailedError);
    expect(toExitCode(err)).toBe(ExitCode.runFailed);
    const runId = (err as RunFailedError).runId!;
    const run = await t.pool.query<{ error: string; error_kind: string; s: SegmentDriftSummary }>(
      `SELECT error, error_kind, stats->'segments' AS s FROM scoring.score_runs WHERE run_id = $1`,
      [runId],
    );
    expect(run.rows[0]!.error_kind).toBe('gate');
    expect(run.rows[0]!.error).toMatch(
      new RegExp(
        `^1 segment\\(s\\) drifted over the limit of 0\\.1 \\(--max-segment-psi\\): region=north \\(PSI \\d+\\.\\d{4} vs run ${firstRun}, [\\d,]+ rows\\); the scores are kept unpublished`,
      ),
    );
    const got = await segmentsOf(runId);
    const north = got.find((g) => g.value === 'north')!;
    expect(north.psi_previous).toBeGreaterThan(0.1);
    expect(north.mover_rank).toBe('1');
    expect(north.previous_run_id).toBe(firstRun);
    for (const g of got.filter((x) => x.value !== 'north')) expect(g.psi_previous, String(g.value)).toBeLessThanOrEqual(0.01);
    expect(run.rows[0]!.s.top[0]).toMatchObject({ segment: 'region', value: 'north' });
    // Readers still see the first run.
    const published = await t.pool.query<{ run_id: string }>('SELECT DISTINCT run_id::text FROM scoring.customer_scores');
    expect(published.rows).toEqual([{ run_id: firstRun }]);
    // runs show: the top movers first.
    const c = await t.pool.connect();
    try {
      const text = formatRunDetail(await showRun(c, 'scoring', runId), featureReports);
      expect(text).toMatch(
        new RegExp(`Segments \\(6; PSI vs run ${firstRun}; top movers first, all in scoring.segment_drift\\):\\n  region=north +\\d+\\.\\d{4} `),
      );
    } finally {
      c.release();
    }
    // After review, the scores the gate kept publish by force with a reason, as its error says.
    await forcePublish({ config: testConfig(t), log: silentLog }, runId, { force: true, reason: 'the north was re-based upstream' });
    const now = await t.pool.query<{ run_id: string }>('SELECT DISTINCT run_id::text FROM scoring.customer_scores');
    expect(now.rows).toEqual([{ run_id: runId }]);
  }, 120_000);

  it("a resumed run keeps the done chunks' counts, and a shared run counts every worker's chunks: every row counted once", async () => {
    await t.pool.query(`CREATE FUNCTION public.sj_fail_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.status = 'done' AND NEW.chunk_no = (SELECT max(chunk_no) FROM scoring.score_chunks WHERE run_id = NEW.run_id) THEN RAISE EXCEPTION 'last chunk refused' USING ERRCODE = 'P0001'; END IF; RETURN NEW; END $$`);
    await t.pool.query('CREATE TRIGGER sj_fail_chunk BEFORE UPDATE ON scoring.score_chunks FOR EACH ROW EXECUTE FUNCTION public.sj_fail_chunk()');
    const err = await runInProcess(t, { modelDir: model, chunkSize, chunkAttempts: 1 }).catch((e: unknown) => e);
    await t.pool.query('DROP TRIGGER sj_fail_chunk ON scoring.score_chunks; DROP FUNCTION public.sj_fail_chunk()');
    expect(err).toBeInstanceOf(RunFailedError);
    const runId = (err as RunFailedError).runId!;
    await resumeInProcess(t, runId);
    const got = await segmentsOf(runId);
    expect(got.reduce((n, g) => n + Number(g.rows_scored) + Number(g.rows_rejected), 0)).toBe(customers);

    const shared = await runInProcess(t, { modelDir: model, chunkSize: 2_000, workers: 2 });
    const counted = await segmentsOf(shared.runId);
    expect(counted.reduce((n, g) => n + Number(g.rows_scored) + Number(g.rows_rejected), 0)).toBe(customers);
    // The same source as the resumed run's: no segment moved.
    for (const g of counted) if (g.psi_previous !== null) expect(g.psi_previous, String(g.value)).toBeLessThanOrEqual(0.001);
    expect(counted.find((g) => g.value === 'north')!.previous_run_id).toBe(runId);
  }, 180_000);

  it('an only-new layer (new and changed customers only) measures no segments: --max-segment-psi does not hold it', async () => {
    await t.pool.query(
      `INSERT INTO customers SELECT customer_id + 50000000, 0, orders_12m, revenue_12m, avg_order_value, days_since_last_order, support_tickets_12m,
              discount_share, returns_12m, web_sessions_30d, email_open_rate, segment, 'north', channel, is_subscriber, has_app
         FROM customers ORDER BY customer_id DESC LIMIT 300`,
    );
    const layer = await runInProcess(t, { modelDir: model, onlyNew: true, maxSegmentPsi: 0.01 });
    expect(layer.published).toBe(true);
    const rows = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM scoring.run_segments WHERE run_id = $1', [layer.runId]);
    expect(rows.rows[0]!.n).toBe('0');
    await t.pool.query('DELETE FROM customers WHERE customer_id > 50000000');
  }, 120_000);

  it('--max-segment-psi without segments in the manifest, or a segment column the source lacks, is refused before anything is written (exit 2)', async () => {
    const runs = async () => Number((await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM scoring.score_runs')).rows[0]!.n);
    const before = await runs();
    const none = await runInProcess(t, { modelDir: await modelCopy(), maxSegmentPsi: 0.2 }).catch((e: unknown) => e);
    expect(toExitCode(none)).toBe(ExitCode.usage);
    expect((none as Error).message).toMatch(/^--max-segment-psi needs the manifest's segments, and .*manifest\.json has none/);
    const missing = await runInProcess(t, { modelDir: await modelCopy((m) => (m.segments = ['regio'])) }).catch((e: unknown) => e);
    expect(toExitCode(missing)).toBe(ExitCode.usage);
    expect((missing as Error).message).toMatch(/manifest\.json: segments\[0\] names column "regio", which customers does not have$/);
    expect(await runs()).toBe(before);
  });
});
