import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { modelCopy, runInProcess } from '../helpers/run.js';
import { ledgerState, publishedSnapshot } from '../helpers/state.js';

/**
 * README "What can go wrong": wrong scores are never published as success (issue 11, items 1 and 2).
 * The shipped model with a NaN written over the last float32 of weights.bin (the output layer's bias)
 * scores every row NaN; finite values that overflow float32 reach the model as ±Infinity.
 */
describe('what can go wrong: non-finite scores and inputs', () => {
  let t: TestDatabase;
  let nanModel: string;
  let dir: string;
  const customers = 300;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers, seed: 11 });
    await runInProcess(t, { chunkSize: 100 });
    nanModel = await modelCopy();
    const weights = join(nanModel, 'weights.bin');
    const bytes = await readFile(weights);
    bytes.writeFloatLE(Number.NaN, bytes.length - 4);
    await writeFile(weights, bytes);
    dir = await mkdtemp(join(tmpdir(), 'sj-scores-'));
  });
  afterAll(async () => t.drop());

  const rejectsOf = async (runId: string) =>
    (
      await t.pool.query<{ k: string; reason: string; column: string | null; value: string | null }>(
        `SELECT customer_id::text k, reason, detail->>'column' AS column, detail->>'value' AS value FROM scoring.score_rejects WHERE run_id = $1 ORDER BY customer_id`,
        [runId],
      )
    ).rows;
  const lastRunId = async () => (await t.pool.query<{ id: string }>('SELECT max(run_id)::text id FROM scoring.score_runs')).rows[0]!.id;

  it('a model that outputs NaN publishes nothing: every row is a non_finite_score reject, and the reject gate fails the run', async () => {
    const before = await publishedSnapshot(t);
    const metrics = join(dir, 'nan.prom');
    const r = await runCliInProcess(['run', '--model', nanModel, '--chunk-size', '100', '--max-psi', '0.1', '--metrics-file', metrics], t.env);
    expect(r.stderr).toMatch(/rejected 100\.00% of rows \(300 of 300\), over the limit of 1\.00% \(--max-reject-ratio\)/);
    expect(r.code).toBe(1);
    expect(await publishedSnapshot(t)).toEqual(before);
    const runId = await lastRunId();
    const rejects = await rejectsOf(runId);
    expect(rejects).toHaveLength(customers);
    expect(new Set(rejects.map((x) => x.k))).toEqual(new Set(before.scores.keys()));
    expect(rejects.every((x) => x.reason === 'non_finite_score' && x.column === null && x.value === 'NaN')).toBe(true);
    const run = (await t.pool.query(`SELECT status, error_kind, rows_scored::int, rows_rejected::int FROM scoring.score_runs WHERE run_id = $1`, [runId]))
      .rows[0];
    expect(run).toEqual({ status: 'failed', error_kind: 'gate', rows_scored: 0, rows_rejected: customers });
    const prom = parsePrometheus(await readFile(metrics, 'utf8'));
    expect(prom.get('scorejob_last_run_success')).toBe(0);
    expect(prom.get('scorejob_last_run_failure', { kind: 'gate' })).toBe(1);
    // The advice cannot be to publish these scores (there are none): it is a new run, and `publish --force` refuses.
    expect(r.stderr).not.toMatch(/publish \d+ --force/);
    expect(r.stderr).toMatch(/no customer was scored, so there is nothing to publish: fix the model or the data, then start a new run \(`scorejob run`\)/);
    const forced = await runCliInProcess(['publish', runId, '--force', '--reason', 'checked the rejects'], t.env);
    expect(forced.stderr).toMatch(new RegExp(`run ${runId} scored no customer .*: publishing it would empty scoring\\.customer_scores`));
    expect(forced.code).toBe(2);
    expect(await publishedSnapshot(t)).toEqual(before);
  });

  it('with every gate open (--max-reject-ratio 1, no --max-psi) a run that scored no customer still publishes nothing', async () => {
    const before = await publishedSnapshot(t);
    const r = await runCliInProcess(['run', '--model', nanModel, '--chunk-size', '100', '--max-reject-ratio', '1'], t.env);
    expect(r.stderr).toMatch(/failed: no customer could be scored \(300 rejected: see scoring\.score_rejects for run \d+\)/);
    expect(r.code).toBe(1);
    expect(await publishedSnapshot(t)).toEqual(before);
  });

  it('with the reject gate opened, a PSI that cannot be computed fails --max-psi (there is a previous published run)', async () => {
    const before = await publishedSnapshot(t);
    const r = await runCliInProcess(['run', '--model', nanModel, '--chunk-size', '100', '--max-reject-ratio', '1', '--max-psi', '0.1'], t.env);
    expect(r.stderr).toMatch(/PSI of the scores against run \d+'s cannot be computed \(this run has no scores\)/);
    expect(r.code).toBe(1);
    expect(r.stdout).not.toMatch(/no previous published run/);
    expect(await publishedSnapshot(t)).toEqual(before);
    const runId = await lastRunId();
    const run = (await t.pool.query(`SELECT status, error_kind FROM scoring.score_runs WHERE run_id = $1`, [runId])).rows[0];
    expect(run).toEqual({ status: 'failed', error_kind: 'gate' });
  });

  it('`runs show` of a run whose scores were all NaN shows no mean or std of 0', async () => {
    const runId = await lastRunId();
    const text = await runCliInProcess(['runs', 'show', runId], t.env);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/non_finite_score: 300/);
    expect(text.stdout).not.toMatch(/mean 0\.0000|std 0\.0000/);
    expect(text.stdout).toMatch(/Scores: none \(every row was rejected\)/);
    expect(text.stdout).not.toMatch(/--force/);
    const json = await runCliInProcess(['runs', 'show', runId, '--json'], t.env);
    const detail = JSON.parse(json.stdout) as { stats: { count: number; mean: number | null; std: number | null } };
    expect(detail.stats).toMatchObject({ count: 0, mean: null, std: null });
  });

  it('the PSI gate says "no previous published run" only when there is none', async () => {
    const fresh = await createTestDatabase();
    try {
      await seedCustomers(fresh.pool, { customers: 100, seed: 3 });
      const r = await runCliInProcess(['run', '--max-psi', '0.1'], fresh.env);
      expect(r.code).toBe(0);
      expect(r.logs.some((l) => String(l.msg).includes('no previous published run'))).toBe(true);
    } finally {
      await fresh.drop();
    }
  });

  it('finite values that overflow float32 (1e300, -1e300, numeric 1e45) are non_finite rejects naming the column and value', async () => {
    const { rows: ids } = await t.pool.query<{ id: string }>('SELECT customer_id::text id FROM customers ORDER BY customer_id LIMIT 3');
    const [a, b, c] = ids.map((x) => x.id);
    await t.pool.query(`UPDATE customers SET discount_share = 1e300 WHERE customer_id = $1`, [a]);
    await t.pool.query(`UPDATE customers SET discount_share = -1e300 WHERE customer_id = $1`, [b]);
    await t.pool.query(`ALTER TABLE customers ALTER COLUMN revenue_12m TYPE numeric`);
    await t.pool.query(`UPDATE customers SET revenue_12m = 1e45 WHERE customer_id = $1`, [c]);
    try {
      for (const backend of ['wasm', 'cpu']) {
        const r = await runCliInProcess(['run', '--chunk-size', '100', '--backend', backend], t.env);
        expect(r.code).toBe(0);
        const runId = await lastRunId();
        expect(await rejectsOf(runId)).toEqual([
          { k: a, reason: 'non_finite', column: 'discount_share', value: '1e+300' },
          { k: b, reason: 'non_finite', column: 'discount_share', value: '-1e+300' },
          { k: c, reason: 'non_finite', column: 'revenue_12m', value: '1e+45' },
        ]);
        const published = await publishedSnapshot(t);
        expect(published.runs).toEqual([runId]);
        expect(published.scores.size).toBe(customers - 3);
        expect([...published.scores.values()].every((s) => Number.isFinite(s))).toBe(true);
        expect((await ledgerState(t)).publishedRun).toBe(runId);
      }
    } finally {
      await t.pool.query(`UPDATE customers SET discount_share = 0.1 WHERE customer_id = ANY($1)`, [[a, b]]);
      await t.pool.query(`UPDATE customers SET revenue_12m = 100 WHERE customer_id = $1`, [c]);
    }
  });
});
