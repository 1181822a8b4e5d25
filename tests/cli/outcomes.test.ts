import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { day, modelWithOutcomes, publishedAt } from '../helpers/outcomes.js';
import { modelCopy } from '../helpers/run.js';

describe('scorejob outcomes sync and seed --outcomes (the CLI)', () => {
  let t: TestDatabase;
  let dir: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 1500, seed: 2 });
    dir = await modelWithOutcomes();
  }, 60_000);
  afterAll(async () => t.drop());

  it('seed --outcomes before any run is refused (exit 2), saying to run first', async () => {
    const r = await runCliInProcess(['seed', '--outcomes'], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^scorejob: seed --outcomes draws each customer's outcome from its published score: no published run in database \S+: run `scorejob run` first\n$/,
    );
  });

  it('run, seed --outcomes, sync: exit 0, one line per run saying how mature it is', async () => {
    expect((await runCliInProcess(['run', '--model', dir, '--chunk-size', '500'], t.env)).code).toBe(0);
    const seeded = await runCliInProcess(['seed', '--outcomes'], t.env);
    expect(seeded.stderr).toBe('');
    expect(seeded.code).toBe(0);
    const runId = (await t.pool.query<{ run_id: string }>('SELECT run_id::text FROM scoring.published_run')).rows[0]!.run_id;
    const asOf = new Date((await publishedAt(t, runId)).getTime() + 30 * day).toISOString();
    const early = await runCliInProcess(['outcomes', 'sync', '--model', dir, '--as-of', asOf], t.env);
    expect(early.stderr).toBe('');
    expect(early.code).toBe(0);
    expect(early.stdout).toMatch(new RegExp(`^run ${runId}: 33% mature, \\d+ customers with an outcome, AUC 0\\.\\d{3} \\(synced\\)\\n$`));
    const late = await runCliInProcess(['outcomes', 'sync', '--model', dir, '--as-of', new Date(Date.parse(asOf) + 70 * day).toISOString()], t.env);
    expect(late.stdout).toMatch(new RegExp(`^run ${runId}: 100% mature, 1\\d{3} customers with an outcome, AUC 0\\.\\d{3} \\(synced\\)\\n$`));
    const metrics = join(await mkdtemp(join(tmpdir(), 'sj-outcomes-')), 'outcomes.prom');
    const again = await runCliInProcess(
      ['outcomes', 'sync', '--model', dir, '--as-of', new Date(Date.parse(asOf) + 80 * day).toISOString(), '--metrics-file', metrics],
      t.env,
    );
    expect(again.stdout).toBe(`run ${runId}: 100% mature (unchanged)\n`);
    const prom = await readFile(metrics, 'utf8');
    const auc = (await t.pool.query('SELECT auc, calibration_error FROM scoring.model_performance WHERE band IS NULL')).rows[0];
    expect(prom).toContain(`scorejob_model_auc{model="customer-value"} ${auc.auc}\n`);
    expect(prom).toContain(`scorejob_model_calibration_error{model="customer-value"} ${auc.calibration_error}\n`);

    // Where people look: runs show (text and HTML) puts the realised figures beside the estimated ones.
    const html = join(dirname(metrics), 'run.html');
    const shown = await runCliInProcess(['runs', 'show', runId, '--html', html], t.env);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(
      /\nOutcomes: mature \(as of \d{4}-\d{2}-\d{2}\), 1[,\d]+ of 1[,\d]+ customers with an outcome \(100\.0%\)\n {2}band +AUC +est\. AUC/,
    );
    expect(shown.stdout).toMatch(new RegExp(`\\n  all +${auc.auc.toFixed(3)} +0\\.\\d{3} `));
    const page = await readFile(html, 'utf8');
    expect(page).toContain('<h2>Outcomes</h2>');
    expect(page.match(/<svg id="reliability"[^]*?<\/svg>/)?.[0].match(/<circle /g)).toHaveLength(10);
    expect(page).toMatch(/<svg id="roc"[^>]*><rect[^]*?<path d="M40\.0,320\.0 L[^"]+L320\.0,40\.0"/);
  });

  it('seed without --customers or --outcomes says which to give', async () => {
    const r = await runCliInProcess(['seed'], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('scorejob: --customers: how many customers to seed is required (or --outcomes, to seed outcomes of the published run)\n');
  });

  it('a bad --as-of is a usage error naming the flag', async () => {
    const r = await runCliInProcess(['outcomes', 'sync', '--model', dir, '--as-of', 'last tuesday'], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('scorejob: --as-of: "last tuesday" is not a time: give ISO 8601, e.g. 2026-03-31 or 2026-03-31T12:00:00Z\n');
  });

  it('a manifest without outcomes: exit 2, and the advice works when followed', async () => {
    const plain = await modelCopy();
    const r = await runCliInProcess(['outcomes', 'sync', '--model', plain], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^scorejob: \S+manifest\.json: outcomes is missing: add e\.g\. "outcomes": \{"table": "customer_outcomes", "horizon": "90 days"\} \(docs\/outcomes\.md\)\n$/,
    );
    const followed = await modelCopy((m) => {
      m.outcomes = { table: 'customer_outcomes', horizon: '90 days' };
    });
    const ok = await runCliInProcess(['outcomes', 'sync', '--model', followed], t.env);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
  });
});
