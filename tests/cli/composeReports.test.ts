import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults } from '../../src/config.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { type CliResult } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, runInProcess } from '../helpers/run.js';

const exitOk = (r: CliResult) => expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(0);
const summaryOf = (r: CliResult) => r.logs.find((l) => / succeeded: scored /.test(String(l.msg)))!;

/**
 * What people read about runs says what readers see: `runs` gives each run's kind, rows scored, carried and
 * published, and marks the current run; a model is named as its manifest names it, a challenger annotated;
 * a replaced run's page does not advise a plain rollback; a shared run's closing line gives every worker's figures.
 */
describe('runs, pages and closing lines say what readers see', () => {
  let t: TestDatabase;
  let model: string;
  let challenger: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 3000, seed: 17, nullFraction: 0 });
    model = await modelCopy();
    challenger = await modelCopy((m) => {
      m.name = 'churn2c';
      m.version = '2.0.0';
    });
  });
  afterAll(async () => t.drop());

  it("--workers 2: the closing line gives the run's rows and rate, and this process's share as such", async () => {
    const r = await runCliInProcess(['run', '--model', model, '--chunk-size', '100', '--workers', '2'], t.env);
    exitOk(r);
    const summary = summaryOf(r);
    expect(summary.rows_scored_now).toBe(3000);
    expect(Number(summary.rows_scored_here)).toBeLessThanOrEqual(3000);
    expect(String(summary.msg)).toMatch(
      /^run \d+ succeeded: scored 3000 customers \(0 rejected\) with 2 workers \(this process scored \d+\) in [\d.]+ s, \d+ rows\/s/,
    );
    expect(String(summary.msg)).not.toMatch(/customers now/);
  });

  it('runs lists kind, scored / carried / published rows and the current run; a challenger under its own name', async () => {
    await t.pool
      .query(`INSERT INTO customers SELECT customer_id + 5000000, tenure_months, orders_12m, revenue_12m, avg_order_value, days_since_last_order, support_tickets_12m,
            discount_share, returns_12m, web_sessions_30d, email_open_rate, segment, region, channel, is_subscriber, has_app FROM customers ORDER BY customer_id LIMIT 10`);
    await runInProcess(t, { modelDir: model, onlyNew: true, chunkSize: defaults.chunkSize });
    const champion = await runCliInProcess(['run', '--model', model, '--challenger', challenger, '--chunk-size', '1000'], t.env);
    exitOk(champion);
    const championId = String(champion.logs.find((l) => typeof l.run_id === 'string')!.run_id);
    const runs = await runCliInProcess(['runs'], t.env);
    exitOk(runs);
    const lines = runs.stdout.split('\n');
    expect(lines[0]).toMatch(/^RUN +STATUS +KIND +TRIGGER +MODEL +SCORED +CARRIED +PUBLISHED +REJECTED/);
    expect(
      lines.find((l) => l.startsWith(`${championId} `)),
      runs.stdout,
    ).toMatch(/succeeded \(current\) +full +manual +customer-value 1\.0\.0 +3,010 +0 +3,010 /);
    expect(lines.find((l) => / only-new /.test(l))).toMatch(/succeeded +only-new +manual +customer-value 1\.0\.0 +10 +3,000 +3,010 /);
    expect(lines.find((l) => / challenger /.test(l))).toMatch(
      new RegExp(`challenger +manual +churn2c 2\\.0\\.0 \\(challenger of run ${championId}\\) +3,010 +0 +— `),
    );
    expect(lines.filter((l) => /\(current\)/.test(l))).toHaveLength(1);
    const show = await runCliInProcess(['runs', 'show', String(Number(championId) + 1)], t.env);
    expect(show.stdout).toMatch(new RegExp(`model +churn2c 2\\.0\\.0 \\(challenger of run ${championId}\\)`));
  });

  it('the page of a run another one replaced names the run to roll back to, not a plain rollback', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sj-html-'));
    const { rows } = await t.pool.query<{ id: string }>(`SELECT min(run_id)::text id FROM scoring.score_runs`);
    const first = rows[0]!.id;
    exitOk(await runCliInProcess(['runs', 'show', first, '--html', join(dir, 'old.html')], t.env));
    const page = await readFile(join(dir, 'old.html'), 'utf8');
    expect(page).toMatch(new RegExp(`customer_scores shows a later run now.*<code>scorejob rollback ${first}</code>`));
    expect(page).not.toMatch(/To put the previous scores back/);
  });

  it('a run that leaves readers fewer customers with reasons than the run it replaces says so', async () => {
    await runInProcess(t, { modelDir: model, reasons: 2, replacePromoted: true, chunkSize: defaults.chunkSize });
    const plain = await runCliInProcess(['run', '--model', model], t.env);
    exitOk(plain);
    const warning = plain.logs.find((l) => /customer_score_reasons has reasons for/.test(String(l.msg)));
    expect(warning, plain.stdout).toMatchObject({ rows_with_reasons: 0, previous_rows_with_reasons: 3010 });
    expect(String(warning!.msg)).toMatch(/^scoring\.customer_score_reasons has reasons for 0 customers of run \d+ now, 3010 fewer than with run \d+ before it/);
  });
});
