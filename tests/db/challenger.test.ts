import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../src/model/backend.js';
import type { Feature } from '../../src/model/manifest.js';
import { formatRunDetail } from '../../src/report/formatRuns.js';
import { showRun } from '../../src/report/runsReport.js';
import { featureReports } from '../../src/features/reports.js';
import { startCli } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { dense, readWeights, sigmoid, weight } from '../helpers/forwardPass.js';
import { holdChunk } from '../helpers/holdChunk.js';
import { makeModel, tinyFeatures } from '../helpers/makeModel.js';
import { modelCopy, resumeInProcess, runInProcess } from '../helpers/run.js';
import { expectRefusedUnchanged, ledgerState, seedWithRejects } from '../helpers/state.js';

const bands = [{ name: 'low', below: 0.3 }, { name: 'mid', below: 0.6 }, { name: 'high' }];

/** md5 of a run's (customer_id, score) in key order, straight from its table; and its row count and distinct keys. */
async function tableDigest(t: TestDatabase, runId: string): Promise<{ md5: string; rows: number; customers: number }> {
  const { rows } = await t.pool.query<{ md5: string; rows: number; customers: number }>(
    `SELECT md5(string_agg(customer_id::text || ':' || score::text, ',' ORDER BY customer_id)) AS md5, count(*)::int AS rows, count(DISTINCT customer_id)::int AS customers
       FROM scoring.score_data WHERE run_id = $1`,
    [runId],
  );
  return rows[0]!;
}

async function publishedDigest(t: TestDatabase): Promise<string> {
  const { rows } = await t.pool.query<{ md5: string }>(
    `SELECT md5(string_agg(customer_id::text || ':' || score::text, ',' ORDER BY customer_id)) AS md5 FROM scoring.customer_scores`,
  );
  return rows[0]!.md5;
}

async function challengerOf(
  t: TestDatabase,
  runId: string,
): Promise<{ run_id: string; status: string; model_name: string; model_version: string; kind: string }> {
  const { rows } = await t.pool.query(`SELECT run_id::text, status, model_name, model_version, kind FROM scoring.score_runs WHERE champion_run_id = $1`, [
    runId,
  ]);
  expect(rows).toHaveLength(1);
  return rows[0];
}

/**
 * The challenger's expected scores in plain JavaScript: the rows read with a plain SELECT, its manifest's
 * transforms written out, and a logistic layer (sigmoid(x·W + b)) from the weights' bytes.
 */
async function expectedLogisticScores(t: TestDatabase, dir: string, features: readonly Feature[]): Promise<Map<string, number>> {
  const w = await readWeights(dir);
  const cols = features.map((f) => `${f.column}::text AS ${f.column}`).join(', ');
  const { rows } = await t.pool.query<Record<string, string | null>>(`SELECT customer_id::text AS key, ${cols} FROM customers ORDER BY customer_id`);
  const out = new Map<string, number>();
  for (const row of rows) {
    const x: number[] = [];
    let ok = true;
    for (const f of features) {
      let v: string | number | boolean | null = row[f.column] ?? null;
      if (v === null) {
        if (f.fill === undefined) {
          ok = false;
          break;
        }
        v = f.fill;
      }
      if (f.transform === 'standardize') x.push((Number(v) - f.mean) / f.std);
      else if (f.transform === 'boolean') x.push(v === true || v === 'true' ? 1 : 0);
      else if (f.transform === 'one_hot') for (const c of f.categories) x.push(c === String(v) ? 1 : 0);
    }
    if (ok) out.set(row.key as string, sigmoid(dense(x, weight(w, 'score_0/kernel'), weight(w, 'score_0/bias')))[0]!);
  }
  return out;
}

/**
 * The comparison as a test computes it, independently of scorejob: each run's deciles with SQL
 * percentile_cont over its own table, SQL corr() over the customers both scored, and the counts in JS.
 */
async function independentComparison(
  t: TestDatabase,
  a: string,
  b: string,
  bounds?: number[],
): Promise<{ both: number; r: number; overlap: number; psi: number; moved: number | null }> {
  const deciles = async (run: string) =>
    (
      await t.pool.query<{ c: number[] }>(
        `SELECT percentile_cont(ARRAY[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) WITHIN GROUP (ORDER BY score) c FROM scoring.score_data WHERE run_id = $1`,
        [run],
      )
    ).rows[0]!.c;
  const ca = await deciles(a);
  const cb = await deciles(b);
  const r = (
    await t.pool.query<{ r: number }>(
      `SELECT corr(a.score, b.score) r FROM scoring.score_data a JOIN scoring.score_data b USING (customer_id) WHERE a.run_id = $1 AND b.run_id = $2`,
      [a, b],
    )
  ).rows[0]!.r;
  const pairs = (
    await t.pool.query<{ a: number; b: number }>(
      `SELECT a.score::float8 a, b.score::float8 b FROM scoring.score_data a JOIN scoring.score_data b USING (customer_id) WHERE a.run_id = $1 AND b.run_id = $2`,
      [a, b],
    )
  ).rows;
  const bucket = (v: number) => ca.filter((c) => v >= c).length;
  const ea = new Array<number>(10).fill(0);
  const eb = new Array<number>(10).fill(0);
  for (const p of pairs) {
    ea[bucket(p.a)]!++;
    eb[bucket(p.b)]!++;
  }
  let psi = 0;
  for (let i = 0; i < 10; i++) {
    const q = Math.max(ea[i]! / pairs.length, 1e-4);
    const s = Math.max(eb[i]! / pairs.length, 1e-4);
    psi += (s - q) * Math.log(s / q);
  }
  // Each run's top decile: its percentiles 91-100, scores at or above its 90th percentile cut.
  const topA = pairs.filter((p) => p.a >= ca[8]!);
  const overlap = topA.filter((p) => p.b >= cb[8]!).length / topA.length;
  const band = (v: number) => (bounds ?? []).filter((x) => v >= x).length;
  const moved = bounds ? pairs.filter((p) => band(p.a) !== band(p.b)).length : null;
  return { both: pairs.length, r, overlap, psi, moved };
}

/**
 * `run --challenger DIR`: a second model scored in the same pass into a sibling run that is never
 * published by the run, compared with the champion in `runs show`, publishable with `publish --challenger`.
 */
describe('a challenger beside the champion (run --challenger DIR)', () => {
  let t: TestDatabase;
  let champion: string;
  let logistic: string;
  let plainRun: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedWithRejects(t, 3000, 23); // rejects in every chunk, for both models (tenure_months has no fill in either)
    await selectBackend('cpu'); // the challenger is built with TF.js
    champion = await modelCopy((m) => (m.output.bands = bands));
    logistic = await mkdtemp(join(tmpdir(), 'sj-challenger-'));
    const made = await makeModel(logistic, { hidden: [], seed: 11, manifest: { name: 'tiny-logistic', version: '2.0.0' } });
    made.model.dispose();
    plainRun = (await runInProcess(t, { modelDir: champion, chunkSize: 500 })).runId;
  });
  afterAll(async () => t.drop());

  it("publishes the champion exactly as without a challenger, and writes exactly the challenger's scores (a plain-JS forward pass) to its sibling run, nobody twice", async () => {
    const plain = await publishedDigest(t);
    const r = await runInProcess(t, { modelDir: champion, chunkSize: 500, challengerDir: logistic });
    expect(r.published).toBe(true);
    expect(await publishedDigest(t)).toBe(plain);
    expect((await tableDigest(t, r.runId)).md5).toBe((await tableDigest(t, plainRun)).md5);
    const published = await t.pool.query<{ run_id: string; model_version: string }>('SELECT DISTINCT run_id::text, model_version FROM scoring.customer_scores');
    expect(published.rows).toEqual([{ run_id: r.runId, model_version: '1.0.0' }]);

    const sibling = await challengerOf(t, r.runId);
    expect(sibling).toMatchObject({ status: 'succeeded', model_name: 'customer-value', model_version: '2.0.0', kind: 'challenger' });
    const expected = await expectedLogisticScores(t, logistic, tinyFeatures);
    const { rows } = await t.pool.query<{ k: string; s: number }>('SELECT customer_id::text k, score s FROM scoring.score_data WHERE run_id = $1', [
      sibling.run_id,
    ]);
    expect(rows.length).toBe(expected.size);
    expect(new Set(rows.map((x) => x.k)).size).toBe(rows.length);
    let worst = 0;
    for (const x of rows) worst = Math.max(worst, Math.abs(x.s - (expected.get(x.k) ?? Number.NaN)));
    expect(worst).toBeLessThan(1e-5);
    // Its rejects are its own (tenure_months NULL has no fill in it either), under its run id.
    const rejects = await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.score_rejects WHERE run_id = $1', [sibling.run_id]);
    expect(rejects.rows[0]!.n).toBe(3000 - expected.size);
    // `scorejob runs` lists it beside its champion under its own manifest name, saying whose challenger it is.
    const listed = await runCliInProcess(['runs', '--log-level', 'silent'], t.env);
    expect(listed.stdout).toMatch(
      new RegExp(`\\n${sibling.run_id} +succeeded +challenger +manual +tiny-logistic 2\\.0\\.0 \\(challenger of run ${r.runId}\\)`),
    );
  });

  it('runs show carries the correlation, PSI, top-decile overlap and band changes, equal to those computed independently', async () => {
    const r = await runInProcess(t, { modelDir: champion, chunkSize: 500, challengerDir: logistic, dryRun: true });
    const sibling = await challengerOf(t, r.runId);
    // A dry run drops both tables: compare on a real run instead.
    expect((await tableDigest(t, sibling.run_id)).rows).toBe(0);
    const real = await runInProcess(t, { modelDir: champion, chunkSize: 500, challengerDir: logistic });
    const realSibling = await challengerOf(t, real.runId);
    const want = await independentComparison(t, real.runId, realSibling.run_id, [0.3, 0.6]);
    const c = await t.pool.connect();
    try {
      const detail = await showRun(c, 'scoring', real.runId, featureReports);
      const got = detail.analyst?.challenger;
      expect(got).toMatchObject({
        run_id: realSibling.run_id,
        model_name: 'tiny-logistic',
        model_version: '2.0.0',
        customers: want.both,
        band_changes: want.moved,
      });
      expect(got?.correlation).toBeCloseTo(want.r, 9);
      expect(got?.top_decile_overlap).toBeCloseTo(want.overlap, 12);
      expect(got?.psi).toBeCloseTo(want.psi, 6);
      expect(want.moved).toBeGreaterThan(0);
      expect(formatRunDetail(detail, featureReports)).toMatch(/Challenger: tiny-logistic 2\.0\.0 \(run \d+\), over [\d,]+ customers both scored/);
      // Beside it, both models' drift from the run readers saw before: the champion's and the challenger's own.
      const own = await t.pool.query<{ champion: number | null; challenger: number | null; baseline: string | null }>(
        `SELECT (c.stats->'drift'->>'psi')::float8 champion, (s.stats->'drift'->>'psi')::float8 challenger, c.stats->'drift'->>'baseline_run_id' baseline
           FROM scoring.score_runs c, scoring.score_runs s WHERE c.run_id = $1 AND s.run_id = $2`,
        [real.runId, realSibling.run_id],
      );
      const { champion: championPsi, challenger: challengerPsi, baseline } = own.rows[0]!;
      expect(baseline).not.toBeNull();
      expect(got?.drift).toEqual({ baseline_run_id: baseline, champion_psi: championPsi, challenger_psi: challengerPsi });
      expect(challengerPsi).toBeGreaterThan(championPsi ?? 0);
      expect(formatRunDetail(detail, featureReports)).toMatch(
        new RegExp(`drift from run ${baseline} \\(PSI\\) +champion ${championPsi!.toFixed(4)}, challenger ${challengerPsi!.toFixed(4)}(\\n|$)`),
      );
    } finally {
      c.release();
    }
    const json = await runCliInProcess(['runs', 'show', real.runId, '--json', '--log-level', 'silent'], t.env);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as { analyst: { challenger: { customers: number } } }).analyst.challenger.customers).toBe(want.both);
    const html = join(await mkdtemp(join(tmpdir(), 'sj-html-')), 'run.html');
    expect((await runCliInProcess(['runs', 'show', real.runId, '--html', html, '--log-level', 'silent'], t.env)).code).toBe(0);
    expect(await readFile(html, 'utf8')).toMatch(/<th>challenger<\/th><td>correlation of the scores +-?\d\.\d{4}<\/td>/);
  });

  it("with --reasons K the champion's customers have their reasons, the challenger's run has none, and both tables are whole", async () => {
    const r = await runInProcess(t, { modelDir: champion, chunkSize: 500, challengerDir: logistic, reasons: 2 });
    const sibling = await challengerOf(t, r.runId);
    const { rows } = await t.pool.query<{ scores: number; reasons: number; challenger: number; other: string | null }>(
      `SELECT (SELECT count(*)::int FROM scoring.score_data WHERE run_id = $1) scores,
              (SELECT count(*)::int FROM scoring.score_reasons WHERE run_id = $1) reasons,
              (SELECT count(*)::int FROM scoring.score_data WHERE run_id = $2) challenger,
              to_regclass('scoring.score_reasons_' || $2)::text other`,
      [r.runId, sibling.run_id],
    );
    expect(rows[0]).toEqual({
      scores: r.rowsScored,
      reasons: r.rowsScored,
      challenger: (await expectedLogisticScores(t, logistic, tinyFeatures)).size,
      other: null,
    });
  });

  it('a challenger identical to the champion gives correlation 1, PSI 0, overlap 1 and no band change', async () => {
    const same = await modelCopy((m) => (m.version = '1.0.1'), champion);
    const r = await runInProcess(t, { modelDir: champion, chunkSize: 500, challengerDir: same });
    const c = await t.pool.connect();
    try {
      const got = (await showRun(c, 'scoring', r.runId, featureReports)).analyst?.challenger;
      expect(got?.correlation).toBeCloseTo(1, 12);
      expect(got?.psi).toBe(0);
      expect(got?.top_decile_overlap).toBe(1);
      expect(got?.band_changes).toBe(0);
    } finally {
      c.release();
    }
  });

  it("kill -9 mid-chunk, then resume: the champion's and the challenger's tables equal an uninterrupted run's", async () => {
    const baseline = await runInProcess(t, { modelDir: champion, chunkSize: 300, challengerDir: logistic });
    const baselineSibling = await challengerOf(t, baseline.runId);
    const hold = await holdChunk(t, 3);
    let runId: string;
    try {
      const child = startCli(['run', '--model', champion, '--challenger', logistic, '--chunk-size', '300'], t.env);
      await hold.reached();
      child.kill('SIGKILL');
      await child.result;
      await hold.endJobSessions();
      runId = (await t.pool.query<{ id: string }>(`SELECT max(run_id)::text id FROM scoring.score_runs WHERE kind <> 'challenger'`)).rows[0]!.id;
    } finally {
      await hold.release();
    }
    const sibling = await challengerOf(t, runId);
    // Chunk 3 committed for neither: both runs have the same chunks done, and no score of a chunk not done.
    const done = await t.pool.query<{ run_id: string; chunks: number[]; held: string }>(
      `SELECT run_id::text, array_agg(chunk_no ORDER BY chunk_no) FILTER (WHERE status = 'done') chunks, max(status) FILTER (WHERE chunk_no = 3) held
         FROM scoring.score_chunks WHERE run_id IN ($1, $2) GROUP BY 1 ORDER BY 1`,
      [runId, sibling.run_id],
    );
    expect(done.rows[0]!.chunks).toEqual(done.rows[1]!.chunks);
    expect(done.rows.map((x) => x.held)).toEqual(['pending', 'pending']);
    const rows = await t.pool.query<{ a: number; b: number; da: number; db: number }>(
      `SELECT (SELECT count(*)::int FROM scoring."score_data_${runId}") a, (SELECT count(*)::int FROM scoring."score_data_${sibling.run_id}") b,
              (SELECT sum(rows_scored)::int FROM scoring.score_chunks WHERE run_id = $1 AND status = 'done') da,
              (SELECT sum(rows_scored)::int FROM scoring.score_chunks WHERE run_id = $2 AND status = 'done') db`,
      [runId, sibling.run_id],
    );
    expect(rows.rows[0]).toEqual({ a: rows.rows[0]!.da, b: rows.rows[0]!.db, da: rows.rows[0]!.da, db: rows.rows[0]!.db });
    expect((await t.pool.query<{ s: string }>('SELECT status s FROM scoring.score_runs WHERE run_id = $1', [sibling.run_id])).rows[0]!.s).toMatch(
      /running|interrupted/,
    );
    const resumed = await runCliInProcess(['resume', runId, '--log-level', 'silent'], t.env);
    expect(resumed.code).toBe(0);
    expect(await tableDigest(t, runId)).toEqual(await tableDigest(t, baseline.runId));
    expect(await tableDigest(t, sibling.run_id)).toEqual(await tableDigest(t, baselineSibling.run_id));
    expect((await challengerOf(t, runId)).status).toBe('succeeded');
  });

  it("publish <run> --challenger shows the challenger's scores in customer_scores, with its version and run id; refusals exit 2 with one line", async () => {
    const r = await runInProcess(t, { modelDir: champion, chunkSize: 500, challengerDir: logistic });
    const sibling = await challengerOf(t, r.runId);
    const refused = async (args: string[], message: RegExp) => {
      const x = await runCliInProcess(['publish', ...args, '--log-level', 'silent'], t.env);
      expect(x.stderr).toMatch(message);
      expect(x.code).toBe(2);
      expect(x.stderr.trim().split('\n')).toHaveLength(1);
    };
    await refused([plainRun, '--challenger'], /run \d+ has no challenger/);
    await refused([sibling.run_id, '--challenger'], /is itself a challenger/);
    await refused([sibling.run_id, '--force', '--reason', 'r'], /is the challenger of run \d+; publish it with `scorejob publish \d+ --challenger`/);
    // A run a gate stopped: failed, and so is its challenger.
    await expect(runInProcess(t, { modelDir: champion, chunkSize: 500, challengerDir: logistic, maxRejectRatio: 0 })).rejects.toMatchObject({ exitCode: 1 });
    const gated = (await t.pool.query<{ id: string }>(`SELECT max(run_id)::text id FROM scoring.score_runs WHERE kind <> 'challenger'`)).rows[0]!.id;
    expect((await challengerOf(t, gated)).status).toBe('failed');
    await refused([gated, '--challenger'], /run \d+ is failed; only a succeeded run's challenger can be published/);

    const before = await t.pool.query('SELECT count(*)::int n FROM scoring.score_publications');
    // Another model altogether (a logistic layer): past the comparison gate by force, with a reason.
    const ok = await runCliInProcess(['publish', r.runId, '--challenger', '--force', '--reason', 'tiny-logistic reviewed', '--log-level', 'silent'], t.env);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const shown = await t.pool.query<{ run_id: string; model_version: string; n: number }>(
      'SELECT run_id::text, model_version, count(*)::int n FROM scoring.customer_scores GROUP BY 1, 2',
    );
    expect(shown.rows).toEqual([{ run_id: sibling.run_id, model_version: '2.0.0', n: (await tableDigest(t, sibling.run_id)).rows }]);
    expect(await publishedDigest(t)).toBe((await tableDigest(t, sibling.run_id)).md5);
    const publication = await t.pool.query(
      'SELECT run_id::text, kind, previous_run_id::text, forced, reason FROM scoring.published_runs ORDER BY publication_id DESC LIMIT 1',
    );
    expect(publication.rows[0]).toEqual({
      run_id: sibling.run_id,
      kind: 'challenger',
      previous_run_id: r.runId,
      forced: true,
      reason: 'tiny-logistic reviewed',
    });
    expect((await t.pool.query('SELECT count(*)::int n FROM scoring.score_publications')).rows[0].n).toBe(before.rows[0].n + 1);
    await refused([r.runId, '--challenger'], /is already published/);
    // Percentiles and bands of the published challenger are its own run's.
    const ranks = await t.pool.query<{ bad: number }>(
      `SELECT count(*) FILTER (WHERE percentile IS NULL OR band IS NULL)::int bad FROM scoring.customer_scores`,
    );
    expect(ranks.rows[0]!.bad).toBe(0);

    // The gated run published by force after review: its challenger follows it, and can be published in turn.
    expect((await runCliInProcess(['publish', gated, '--force', '--reason', 'rejects reviewed', '--log-level', 'silent'], t.env)).code).toBe(0);
    const gatedSibling = await challengerOf(t, gated);
    expect(gatedSibling.status).toBe('succeeded');
    expect(
      (await runCliInProcess(['publish', gated, '--challenger', '--force', '--reason', 'tiny-logistic reviewed', '--log-level', 'silent'], t.env)).code,
    ).toBe(0);
    expect((await t.pool.query('SELECT DISTINCT run_id::text FROM scoring.customer_scores')).rows).toEqual([{ run_id: gatedSibling.run_id }]);
  });

  it('publish --challenger refuses a challenger that scored nobody, rejected more than --max-reject-ratio or drifted over --max-psi (exit 2, one line); customer_scores unchanged', async () => {
    const published = async () =>
      (await t.pool.query(`SELECT md5(string_agg(customer_id || ':' || score || ':' || run_id, ',' ORDER BY customer_id)) h FROM scoring.customer_scores`))
        .rows[0].h as string;
    const refused = async (runId: string, message: RegExp) => {
      const before = await published();
      const x = await runCliInProcess(['publish', runId, '--challenger', '--log-level', 'silent'], t.env);
      expect(x.stderr).toMatch(message);
      expect(x.code).toBe(2);
      expect(x.stderr.trim().split('\n')).toHaveLength(1);
      expect(await published()).toBe(before);
    };
    // Every score NaN: the challenger rejects every customer; its run still succeeds beside its champion.
    const nan = await modelCopy((m) => (m.version = '9.9.9-nan'), champion);
    const weightsFile = join(nan, 'weights.bin');
    const bytes = await readFile(weightsFile);
    bytes.writeFloatLE(Number.NaN, bytes.length - 4);
    await writeFile(weightsFile, bytes);
    // customer_scores shows the challenger the test before published: this run goes back to the champion.
    const empty = await runInProcess(t, { modelDir: champion, chunkSize: 500, challengerDir: nan, replacePromoted: true });
    expect((await challengerOf(t, empty.runId)).status).toBe('succeeded');
    await refused(empty.runId, /challenger of run \d+ \(run \d+\) scored no customer .*publishing it would empty customer_scores/);
    // The champion fills tenure_months and rejects nobody; the challenger (no fill) rejects the NULLs: over a limit of 0.
    const filled = await modelCopy((m) => {
      for (const f of m.features as { column: string; fill?: number }[]) if (f.column === 'tenure_months') f.fill = 0;
    }, champion);
    const over = await runInProcess(t, { modelDir: filled, chunkSize: 500, challengerDir: champion, maxRejectRatio: 0 });
    await refused(over.runId, /challenger of run \d+ \(run \d+\) rejected .* over the limit of 0\.000% \(--max-reject-ratio\)/);
    // The champion's scores equal the published run's (PSI 0, under --max-psi); the challenger, another model, drifted.
    await runInProcess(t, { modelDir: champion, chunkSize: 500 });
    const drifted = await runInProcess(t, { modelDir: champion, chunkSize: 500, challengerDir: logistic, maxPsi: 0.001 });
    await refused(
      drifted.runId,
      /^scorejob: the challenger of run \d+ \(run \d+\): the scores drifted from run \d+'s: PSI \d\.\d{4}, over the limit of 0\.001 \(--max-psi\); .*`scorejob publish \d+ --challenger --force --reason "<what you checked>"`\n$/,
    );
    // The advice works: after review, --force publishes it over its gates.
    const forced = await runCliInProcess(['publish', drifted.runId, '--challenger', '--force', '--reason', 'drift reviewed', '--log-level', 'silent'], t.env);
    expect(forced.code).toBe(0);
    const sibling = await challengerOf(t, drifted.runId);
    expect((await t.pool.query('SELECT DISTINCT run_id::text FROM scoring.customer_scores')).rows).toEqual([{ run_id: sibling.run_id }]);
  });

  it('a bad --challenger dir, or one reading another source table, is refused with exit 2 and one line naming it; nothing is written', async () => {
    const before = await ledgerState(t);
    const missing = join(tmpdir(), 'sj-no-such-model');
    await expectRefusedUnchanged(
      t,
      before,
      await runCliInProcess(['run', '--model', champion, '--challenger', missing], t.env),
      /--challenger: model directory .*sj-no-such-model does not exist \(--challenger DIR\)/,
    );
    const elsewhere = await modelCopy((m) => (m.source = { table: 'other_customers', key: 'customer_id' }), logistic);
    await expectRefusedUnchanged(
      t,
      before,
      await runCliInProcess(['run', '--model', champion, '--challenger', elsewhere], t.env),
      /manifest\.json: the challenger reads other_customers by customer_id, the champion customers by customer_id/,
    );
    await expectRefusedUnchanged(
      t,
      before,
      await runCliInProcess(['run', '--model', champion, '--challenger', logistic, '--only-new'], t.env),
      /--challenger cannot be combined with --only-new/,
    );
    const missingColumn = await modelCopy((m) => (m.features[0].column = 'no_such_column'), logistic);
    await expectRefusedUnchanged(
      t,
      before,
      await runCliInProcess(['run', '--model', champion, '--challenger', missingColumn], t.env),
      /^scorejob: --challenger .*sj-model-\w+: .*no_such_column/,
    );
  });

  it('resume reloads the challenger from its dir and refuses (exit 2) when its files changed; a challenger run is not resumed on its own', async () => {
    const moving = await modelCopy(undefined, logistic);
    await expect(
      runInProcess(t, { modelDir: champion, chunkSize: 500, challengerDir: moving, maxRejectRatio: 0, replacePromoted: true }),
    ).rejects.toMatchObject({ exitCode: 1 });
    const gated = (await t.pool.query<{ id: string }>(`SELECT max(run_id)::text id FROM scoring.score_runs WHERE kind <> 'challenger'`)).rows[0]!.id;
    const sibling = await challengerOf(t, gated);
    await writeFile(join(moving, 'manifest.json'), (await readFile(join(moving, 'manifest.json'), 'utf8')).replace('"2.0.0"', '"2.0.1"'));
    await expect(resumeInProcess(t, gated)).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(/the challenger's model files in .* changed since run \d+ started/),
    });
    await expect(resumeInProcess(t, sibling.run_id)).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(/is the challenger of run \d+; resume that run instead/),
    });
  });
});

describe('retention and challengers', () => {
  let t: TestDatabase;
  let logistic: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedWithRejects(t, 600, 5);
    await selectBackend('cpu');
    logistic = await mkdtemp(join(tmpdir(), 'sj-challenger-'));
    (await makeModel(logistic, { hidden: [], seed: 3, manifest: { name: 'tiny-logistic', version: '2.0.0' } })).model.dispose();
  });
  afterAll(async () => t.drop());

  const tables = async (): Promise<string[]> =>
    (
      await t.pool.query<{ n: string }>(
        `SELECT replace(tablename, 'score_data_', '') n FROM pg_tables WHERE schemaname = 'scoring' AND tablename LIKE 'score\\_data\\_%' ORDER BY length(tablename), tablename`,
      )
    ).rows.map((r) => r.n);

  it('drops a challenger with its champion, never counts it as a kept run, and keeps a published one like any run', async () => {
    const a = (await runInProcess(t, { chunkSize: 200, challengerDir: logistic, keepRuns: 2 })).runId;
    const a2 = (await challengerOf(t, a)).run_id;
    const b = (await runInProcess(t, { chunkSize: 200, challengerDir: logistic, keepRuns: 2 })).runId;
    const b2 = (await challengerOf(t, b)).run_id;
    // keep 2: b (published) and a; their challengers are kept beside them, counted as neither.
    expect(await tables()).toEqual([a, a2, b, b2].sort((x, y) => Number(x) - Number(y)));
    const c = (await runInProcess(t, { chunkSize: 200, keepRuns: 2 })).runId;
    // keep 2: c and b; a goes, and its challenger with it.
    expect(await tables()).toEqual([b, b2, c]);
    expect((await runCliInProcess(['publish', c, '--challenger', '--log-level', 'silent'], t.env)).code).toBe(2);
    expect((await runCliInProcess(['publish', b, '--challenger', '--log-level', 'silent'], t.env)).code).toBe(2); // c was published after it
    const d = (await runInProcess(t, { chunkSize: 200, challengerDir: logistic, keepRuns: 1 })).runId;
    const d2 = (await challengerOf(t, d)).run_id;
    expect(
      (
        await runCliInProcess(
          ['publish', d, '--challenger', '--force', '--reason', 'tiny-logistic reviewed', '--log-level', 'silent', '--on-publish-command', ''],
          t.env,
        )
      ).code,
    ).toBe(0);
    // The published challenger is the pointer: kept whatever --keep-runs says, and its champion is a kept published run.
    const e = (await runInProcess(t, { chunkSize: 200, keepRuns: 2, replacePromoted: true })).runId;
    expect(await tables()).toEqual([d2, e]);
    const f = (await runInProcess(t, { chunkSize: 200, keepRuns: 3 })).runId;
    expect(await tables()).toEqual([d2, e, f]);
  });
});
