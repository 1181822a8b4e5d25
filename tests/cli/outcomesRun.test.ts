import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { day, modelWithOutcomes, publishedAt } from '../helpers/outcomes.js';

/** The outcomes feature inside `scorejob run`: the sync after each publish and the --min-auc gate. */
describe('scorejob run with manifest outcomes', () => {
  let t: TestDatabase;
  let dir: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 1200, seed: 5 });
    dir = await modelWithOutcomes();
  }, 60_000);
  afterAll(async () => t.drop());

  const current = async () => (await t.pool.query<{ run_id: string }>('SELECT run_id::text FROM scoring.published_run')).rows[0]?.run_id;

  it('a run publishes although its outcomes table does not exist yet, and says how to sync later', async () => {
    const r = await runCliInProcess(['run', '--model', dir, '--chunk-size', '400'], t.env);
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).toContain(`outcomes not synced after the publish`);
    expect(r.stdout + r.stderr).toContain(`scorejob outcomes sync --model ${dir}`);
    expect(await current()).toBeDefined();
  });

  it('--min-auc without outcomes in the manifest is refused before anything is written (exit 2)', async () => {
    const before = await t.pool.query('SELECT count(*)::int AS n FROM scoring.score_runs');
    const r = await runCliInProcess(['run', '--min-auc', '0.7', '--chunk-size', '400'], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--min-auc: the manifest in \S+ declares no outcomes/);
    expect((await t.pool.query('SELECT count(*)::int AS n FROM scoring.score_runs')).rows[0].n).toBe(before.rows[0].n);
  });

  it('below --min-auc the run is kept unpublished; the advice (publish --force --reason) publishes it', async () => {
    const first = (await current())!;
    expect((await runCliInProcess(['seed', '--outcomes'], t.env)).code).toBe(0);
    const asOf = new Date((await publishedAt(t, first)).getTime() + 100 * day).toISOString();
    expect((await runCliInProcess(['outcomes', 'sync', '--model', dir, '--as-of', asOf], t.env)).code).toBe(0);
    const auc = (await t.pool.query<{ auc: number }>('SELECT auc FROM scoring.model_performance WHERE run_id = $1 AND band IS NULL', [first])).rows[0]!.auc;
    expect(auc).toBeGreaterThan(0.5);

    const metrics = join(await mkdtemp(join(tmpdir(), 'sj-outcomes-run-')), 'run.prom');
    const gated = await runCliInProcess(
      ['run', '--model', dir, '--chunk-size', '400', '--min-auc', String(Math.min(1, auc + 0.01)), '--metrics-file', metrics],
      t.env,
    );
    expect(gated.code).toBe(1);
    // The run's own metrics file carries the realised figures it was gated on, beside its failure.
    const prom = await readFile(metrics, 'utf8');
    expect(prom).toMatch(/^scorejob_last_run_failure\{model="customer-value",kind="gate"\} 1$/m);
    expect(Number(/^scorejob_model_auc\{model="customer-value"\} (\S+)$/m.exec(prom)?.[1])).toBeCloseTo(auc, 9);
    expect(prom).toMatch(/^scorejob_model_calibration_error\{model="customer-value"\} 0\.\d+/m);
    const advice = /`(scorejob publish (\d+) --force --reason TEXT)`/.exec(gated.stderr);
    expect(advice, gated.stderr).not.toBeNull();
    expect(await current()).toBe(first);
    const followed = await runCliInProcess(['publish', advice![2]!, '--force', '--reason', 'reviewed: AUC drop within tolerance'], t.env);
    expect(followed.stderr).not.toMatch(/error/i);
    expect(followed.code).toBe(0);
    expect(await current()).toBe(advice![2]);
  });

  it('at or above --min-auc the run publishes, and its publish syncs the kept runs', async () => {
    const r = await runCliInProcess(['run', '--model', dir, '--chunk-size', '400', '--min-auc', '0.5'], t.env);
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/outcomes: \d+ of \d+ kept runs synced/);
    const runId = (await current())!;
    const synced = await t.pool.query('SELECT 1 FROM scoring.model_performance WHERE run_id = $1', [runId]);
    expect(synced.rowCount).toBeGreaterThan(0);
  });
});
