import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { ExitCode, RunFailedError, toExitCode } from '../../src/errors.js';
import type { FeatureDriftSummary } from '../../src/stats/featurePsi.js';
import { showRun } from '../../src/report/runsReport.js';
import { formatRunDetail } from '../../src/report/formatRuns.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, resumeInProcess, runInProcess, runOptions, silentLog, testConfig } from '../helpers/run.js';
import { startRun } from '../../src/run/runJob.js';
import { featureReports } from '../../src/features/reports.js';
import { renderRunHtml } from '../../src/report/htmlReport.js';

const customers = 100_000;

/**
 * Per-feature drift against real PostgreSQL (docs/models.md "Feature drift"): with the model's
 * baseline.json, every chunk counts every feature into the baseline's bins in its transaction; the run
 * stores each feature's PSI against the baseline and the previous published run, `runs show` and the
 * reader view list them, and `--max-feature-psi` stops the publish naming the features over it.
 */
describe('feature drift against the model baseline', () => {
  let t: TestDatabase;
  let model: string;
  let firstRun: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers, seed: 11 });
    model = await modelCopy();
    // The training distribution: every other customer (the run then scores a sample it was not computed on).
    const r = await runCliInProcess(['model', 'baseline', model, '--table', 'customers', '--where', 'customer_id % 2 = 0'], t.env);
    expect(r.code, r.stderr).toBe(0);
    firstRun = (await runInProcess(t, { modelDir: model, chunkSize: 20_000 })).runId;
  }, 240_000);
  afterAll(async () => t.drop());

  const summaryOf = async (runId: string): Promise<FeatureDriftSummary> => {
    const { rows } = await t.pool.query<{ d: FeatureDriftSummary }>(`SELECT stats->'feature_drift' AS d FROM scoring.score_runs WHERE run_id = $1`, [runId]);
    return rows[0]!.d;
  };
  const summary = (d: { feature_drift?: FeatureDriftSummary | null }): FeatureDriftSummary => d.feature_drift!;
  const psiOf = (s: FeatureDriftSummary, feature: string) => s.features.find((f) => f.feature === feature)!;

  it("an unchanged source: every feature's PSI against the baseline is at most 0.01, and its counts are every row of the table", async () => {
    const s = await summaryOf(firstRun);
    expect(s.features).toHaveLength(15);
    expect(s.previous_run_id).toBeNull();
    for (const f of s.features) expect(f.psi_baseline, f.feature).toBeLessThanOrEqual(0.01);
    // The merged counts against plain SQL: every row counted once per feature, NULLs in the last bin.
    const { rows } = await t.pool.query<{ feature: string; total: string; nulls: string }>(
      `SELECT feature, (SELECT sum(n) FROM unnest(counts) n) AS total, counts[array_length(counts, 1)] AS nulls FROM scoring.run_feature_drift WHERE run_id = $1`,
      [firstRun],
    );
    for (const r of rows) expect(Number(r.total), r.feature).toBe(customers);
    const nulls = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM customers WHERE days_since_last_order IS NULL');
    expect(rows.find((r) => r.feature === 'days_since_last_order')?.nulls).toBe(nulls.rows[0]!.n);
  });

  it('one feature shifted by +0.5 SD: it is the top mover (PSI >= 0.1), every other stays <= 0.01, and --max-feature-psi stops the publish naming it', async () => {
    const { rows } = await t.pool.query<{ sd: number }>('SELECT stddev_pop(tenure_months)::float8 AS sd FROM customers');
    await t.pool.query('UPDATE customers SET tenure_months = tenure_months + round($1::float8 * 0.5)::int', [rows[0]!.sd]);
    const metrics = join(await mkdtemp(join(tmpdir(), 'sj-drift-')), 'run.prom');
    const ctx = { config: testConfig(t), log: silentLog, stop: { requested: undefined }, observe: { metricsFile: metrics } };
    const err = await startRun(ctx, runOptions({ modelDir: model, chunkSize: 20_000, maxFeaturePsi: 0.1 })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RunFailedError);
    expect(toExitCode(err)).toBe(ExitCode.runFailed);
    const runId = (err as RunFailedError).runId!;
    const run = await t.pool.query<{ error: string; error_kind: string }>('SELECT error, error_kind FROM scoring.score_runs WHERE run_id = $1', [runId]);
    expect(run.rows[0]!.error_kind).toBe('gate');
    expect(run.rows[0]!.error).toMatch(
      /^1 feature\(s\) drifted over the limit of 0\.1 \(--max-feature-psi\): tenure_months \(PSI \d\.\d{4} vs baseline, \d\.\d{4} vs run \d+\); the scores are kept unpublished/,
    );
    const s = await summaryOf(runId);
    expect(s.features[0]!.feature).toBe('tenure_months');
    expect(s.features[0]!.psi_baseline).toBeGreaterThanOrEqual(0.1);
    expect(s.features[0]!.psi_previous).toBeGreaterThanOrEqual(0.1);
    expect(s.previous_run_id).toBe(firstRun);
    for (const f of s.features.slice(1)) {
      expect(f.psi_baseline, f.feature).toBeLessThanOrEqual(0.01);
      expect(f.psi_previous, f.feature).toBeLessThanOrEqual(0.01);
    }
    // Readers still see the first run.
    const published = await t.pool.query<{ run_id: string }>('SELECT DISTINCT run_id::text FROM scoring.customer_scores');
    expect(published.rows).toEqual([{ run_id: firstRun }]);
    // The reader view lists them per run, top mover ranked 1.
    const view = await t.pool.query<{ feature: string; mover_rank: string; published: boolean }>(
      'SELECT feature, mover_rank, published FROM scoring.feature_drift WHERE run_id = $1 ORDER BY mover_rank, feature',
      [runId],
    );
    expect(view.rows).toHaveLength(15);
    expect(view.rows[0]).toEqual({ feature: 'tenure_months', mover_rank: '1', published: false });
    // runs show: the top movers first.
    const c = await t.pool.connect();
    try {
      const detail = await showRun(c, 'scoring', runId, featureReports);
      const text = formatRunDetail(detail, featureReports);
      expect(text).toMatch(
        new RegExp(
          `Feature drift \\(PSI vs the model's baseline and vs run ${firstRun}, top movers first\\):\\n  tenure_months +\\d\\.\\d{4} +\\d\\.\\d{4}\\n`,
        ),
      );
      // The HTML page: every feature's PSI, and the top movers' shares per bin beside the baseline's and the previous run's.
      const page = renderRunHtml(detail, { reports: featureReports });
      expect(page).toContain('<h2>Feature drift</h2>');
      expect(page).toMatch(/<table id="feature-drift"><tr><th>feature<\/th><th>PSI vs baseline<\/th><th>PSI vs run \d+<\/th><\/tr><tr><td>tenure_months<\/td>/);
      const movers = [...page.matchAll(/<table class="feature-distribution" data-feature="([^"]+)">/g)].map((m) => m[1]);
      expect(movers).toHaveLength(5);
      expect(movers[0]).toBe('tenure_months');
      expect(page).toMatch(
        new RegExp(`data-feature="tenure_months"><tr><th>tenure_months</th><th>this run</th><th>baseline</th><th>run ${firstRun}</th></tr><tr><td>&lt; `),
      );
      const shares = summary(detail).distributions![0]!;
      for (const [i, x] of [shares.run, shares.baseline, shares.previous!].entries())
        expect(
          x.reduce((a, b) => a + b, 0),
          String(i),
        ).toBeCloseTo(1, 9);
      expect(shares.bins.at(-1)).toBe('NULL');
    } finally {
      c.release();
    }
    // The run's metrics file: the top movers' PSI against the baseline and the previous run, the gate's failure beside them.
    const prom = await readFile(metrics, 'utf8');
    expect(prom).toMatch(/^scorejob_last_run_failure\{model="customer-value",kind="gate"\} 1$/m);
    const psi = [...prom.matchAll(/^scorejob_feature_psi\{model="customer-value",feature="([^"]+)",against="(baseline|previous)"\} (\S+)$/gm)];
    expect(psi).toHaveLength(20);
    const tenure = psi.filter((m) => m[1] === 'tenure_months').map((m) => [m[2], Number(m[3])]);
    expect(tenure).toEqual([
      ['baseline', s.features[0]!.psi_baseline],
      ['previous', s.features[0]!.psi_previous],
    ]);
    // After review, the scores a gate kept publish by force, as the error says.
    const forced = await runCliInProcess(['publish', runId, '--force', '--reason', 'tenure_months was re-based upstream', '--metrics-file', metrics], t.env);
    expect(forced.code, forced.stderr).toBe(0);
    // The forced publish replaces the metrics file: the run's feature drift stays in it.
    const after = await readFile(metrics, 'utf8');
    expect(after).toMatch(/^scorejob_last_run_forced_publish\{model="customer-value"\} 1$/m);
    expect(after).toContain(`scorejob_feature_psi{model="customer-value",feature="tenure_months",against="baseline"} ${s.features[0]!.psi_baseline}\n`);
    const now = await t.pool.query<{ run_id: string }>('SELECT DISTINCT run_id::text FROM scoring.customer_scores');
    expect(now.rows).toEqual([{ run_id: runId }]);
  }, 240_000);

  it("a resumed run keeps the done chunks' counts, and a shared run counts every worker's chunks", async () => {
    // A permanent failure of the last chunk's commit (a trigger, inside the chunk's transaction): the others stay done.
    await t.pool.query(`CREATE FUNCTION public.sj_fail_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.status = 'done' AND NEW.chunk_no = (SELECT max(chunk_no) FROM scoring.score_chunks WHERE run_id = NEW.run_id) THEN RAISE EXCEPTION 'last chunk refused' USING ERRCODE = 'P0001'; END IF; RETURN NEW; END $$`);
    await t.pool.query('CREATE TRIGGER sj_fail_chunk BEFORE UPDATE ON scoring.score_chunks FOR EACH ROW EXECUTE FUNCTION public.sj_fail_chunk()');
    const err = await runInProcess(t, { modelDir: model, chunkSize: 20_000, chunkAttempts: 1 }).catch((e: unknown) => e);
    await t.pool.query('DROP TRIGGER sj_fail_chunk ON scoring.score_chunks; DROP FUNCTION public.sj_fail_chunk()');
    expect(err).toBeInstanceOf(RunFailedError);
    const runId = (err as RunFailedError).runId!;
    const before = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM scoring.chunk_feature_counts WHERE run_id = $1', [runId]);
    expect(Number(before.rows[0]!.n)).toBeGreaterThan(0);
    await resumeInProcess(t, runId);
    const totals = await t.pool.query<{ total: string }>(
      `SELECT (SELECT sum(n) FROM unnest(counts) n) AS total FROM scoring.run_feature_drift WHERE run_id = $1`,
      [runId],
    );
    expect(totals.rows.map((r) => Number(r.total))).toEqual(new Array(15).fill(customers));

    const shared = await runInProcess(t, { modelDir: model, chunkSize: 5_000, workers: 2 });
    const workers = await t.pool.query<{ total: string }>(
      `SELECT (SELECT sum(n) FROM unnest(counts) n) AS total FROM scoring.run_feature_drift WHERE run_id = $1`,
      [shared.runId],
    );
    expect(workers.rows.map((r) => Number(r.total))).toEqual(new Array(15).fill(customers));
    expect(psiOf(await summaryOf(shared.runId), 'tenure_months').psi_previous).toBeLessThanOrEqual(0.01);
  }, 300_000);

  it('an only-new layer (new and changed customers only) is not measured: --max-feature-psi does not hold it', async () => {
    await t.pool.query(
      `INSERT INTO customers SELECT customer_id + 50000000, 0, orders_12m, revenue_12m, avg_order_value, days_since_last_order, support_tickets_12m,
              discount_share, returns_12m, web_sessions_30d, email_open_rate, segment, region, channel, is_subscriber, has_app
         FROM customers ORDER BY customer_id DESC LIMIT 500`,
    );
    const layer = await runInProcess(t, { modelDir: model, onlyNew: true, maxFeaturePsi: 0.01 });
    expect(layer.published).toBe(true);
    expect(layer.rowsScored).toBe(500);
    const rows = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM scoring.run_feature_drift WHERE run_id = $1', [layer.runId]);
    expect(rows.rows[0]!.n).toBe('0');
  }, 240_000);

  it('--max-feature-psi without a baseline: refused before anything is written, and the advice works when followed', async () => {
    const bare = await modelCopy();
    const runs = async () => Number((await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM scoring.score_runs')).rows[0]!.n);
    const n = await runs();
    const r = await runCliInProcess(['run', '--model', bare, '--max-feature-psi', '0.5', '--backend', 'cpu'], t.env);
    expect(r.code).toBe(ExitCode.usage);
    const advice = /run `scorejob model baseline (\S+) --table <training table>` first/.exec(r.stderr);
    expect(advice, r.stderr).not.toBeNull();
    expect(await runs()).toBe(n);
    const b = await runCliInProcess(['model', 'baseline', advice![1]!, '--table', 'customers'], t.env);
    expect(b.code, b.stderr).toBe(0);
    const again = await runCliInProcess(['run', '--model', bare, '--max-feature-psi', '0.5', '--backend', 'cpu', '--chunk-size', '50000'], t.env);
    expect(again.code, again.stderr).toBe(0);
  }, 240_000);

  it('a resume refuses a baseline that changed since the run started', async () => {
    await t.pool.query(`CREATE FUNCTION public.sj_fail_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.status = 'done' AND NEW.chunk_no = (SELECT max(chunk_no) FROM scoring.score_chunks WHERE run_id = NEW.run_id) THEN RAISE EXCEPTION 'last chunk refused' USING ERRCODE = 'P0001'; END IF; RETURN NEW; END $$`);
    await t.pool.query('CREATE TRIGGER sj_fail_chunk BEFORE UPDATE ON scoring.score_chunks FOR EACH ROW EXECUTE FUNCTION public.sj_fail_chunk()');
    const err = await runInProcess(t, { modelDir: model, chunkSize: 50_000, chunkAttempts: 1 }).catch((e: unknown) => e);
    await t.pool.query('DROP TRIGGER sj_fail_chunk ON scoring.score_chunks; DROP FUNCTION public.sj_fail_chunk()');
    const runId = (err as RunFailedError).runId!;
    await writeFile(join(model, 'baseline.json'), '{"format":1,"features":[]}\n');
    const refused = await resumeInProcess(t, runId).catch((e: unknown) => e);
    expect(toExitCode(refused)).toBe(ExitCode.usage);
    expect(String((refused as Error).message)).toMatch(
      /baseline\.json changed since the run started \(sha256 [0-9a-f]{16}…\): put that baseline back, or start a new run$/,
    );
  }, 240_000);
  it('a baseline.json that is not one is refused before anything is written, naming the file and the command that writes it', async () => {
    const broken = await modelCopy();
    await writeFile(join(broken, 'baseline.json'), '{"format":1,"features":{"tenure_months":1}}\n');
    const before = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM scoring.score_runs');
    const r = await runCliInProcess(['run', '--model', broken, '--backend', 'cpu'], t.env);
    expect(r.code).toBe(ExitCode.usage);
    expect(r.stderr).toContain(
      `${join(broken, 'baseline.json')} is not a feature baseline (each feature needs its column, kind, shares and nullShare): write it again with \`scorejob model baseline ${broken} --table <training table>\``,
    );
    const after = await t.pool.query<{ n: string }>('SELECT count(*) AS n FROM scoring.score_runs');
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
  }, 120_000);
});
