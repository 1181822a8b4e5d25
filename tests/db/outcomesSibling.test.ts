import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { seedOutcomes } from '../../src/dev/seedOutcomes.js';
import { performanceGate, syncOutcomes } from '../../src/features/outcomes/index.js';
import { featureReports } from '../../src/features/reports.js';
import { formatRunDetail } from '../../src/report/formatRuns.js';
import { renderRunHtml } from '../../src/report/htmlReport.js';
import { showRun } from '../../src/report/runsReport.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { day, modelWithOutcomes, publishedAt, threeBands } from '../helpers/outcomes.js';
import { modelCopy, runInProcess } from '../helpers/run.js';

/** A second model scored beside the published one in the same pass gets the same figures, on the same outcomes. */
describe('outcomes of a model scored beside the published one (run --challenger)', () => {
  let t: TestDatabase;
  let champion: string;
  let second: string;
  let championRun: string;
  let secondRun: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 3000, seed: 5 });
    champion = await modelWithOutcomes();
    second = await modelCopy((m) => {
      m.name = 'customer-value-b';
      m.version = '2.0.0';
      m.outcomes = { table: 'customer_outcomes', horizon: '90 days' };
      m.output.bands = threeBands;
    });
    championRun = (await runInProcess(t, { modelDir: champion, chunkSize: 1000, challengerDir: second })).runId;
    await seedOutcomes(t.pool, { schema: 'scoring', seed: 3 });
    const { rows } = await t.pool.query<{ run_id: string }>('SELECT run_id::text FROM scoring.score_runs WHERE champion_run_id = $1', [championRun]);
    secondRun = rows[0]!.run_id;
  }, 120_000);
  afterAll(async () => t.drop());

  it("syncs the second model's run over the published run's window: same customers, same outcomes, its own AUC", async () => {
    const asOf = new Date((await publishedAt(t, championRun)).getTime() + 100 * day);
    // The slot's runs, the one scored beside the published run included, under the slot's outcomes definition.
    const synced = await syncOutcomes(t.pool, { schema: 'scoring', modelDir: champion, asOf });
    expect(synced.map((s) => [s.runId, s.outcome, s.maturity])).toEqual([
      [championRun, 'synced', 1],
      [secondRun, 'synced', 1],
    ]);
    const { rows } = await t.pool.query(
      `SELECT run_id::text, model_name, model_version, customers, with_outcome, positives, auc, published_at FROM scoring.model_performance WHERE band IS NULL ORDER BY run_id`,
    );
    expect(rows).toHaveLength(2);
    const [a, b] = rows;
    expect(b.run_id).toBe(secondRun);
    // model_name is the slot (as in published_runs); the version is the second model's own.
    expect([b.model_name, b.model_version]).toEqual(['customer-value', '2.0.0']);
    expect(b.published_at).toEqual(a.published_at);
    expect([b.customers, b.with_outcome, b.positives]).toEqual([a.customers, a.with_outcome, a.positives]);
    expect(Number(b.customers)).toBe(3000);
    expect(b.auc).toBeGreaterThan(0.5);

    // The same figure from the second model's own scores, computed here: rank-sum AUC over the joined rows.
    const joined = await t.pool.query<{ p: number; y: number }>(
      `SELECT d.score::float8 AS p, bool_or(o.label)::int AS y
         FROM scoring.score_data d JOIN customer_outcomes o ON o.customer_id = d.customer_id
        WHERE d.run_id = $1 AND o.event_time > $2 AND o.event_time <= $2::timestamptz + interval '90 days'
        GROUP BY d.customer_id, d.score`,
      [secondRun, a.published_at],
    );
    expect(joined.rows.length).toBe(Number(b.with_outcome));
    expect(b.auc).toBeCloseTo(rankSumAuc(joined.rows), 6);
  });

  it("runs show of the published run prints the second model's realised figures beside its own, and so does the HTML page", async () => {
    const { rows } = await t.pool.query<{ run_id: string; auc: number }>(
      'SELECT run_id::text, auc FROM scoring.model_performance WHERE band IS NULL AND run_id IN ($1, $2) ORDER BY run_id',
      [championRun, secondRun],
    );
    expect(rows).toHaveLength(2);
    const c = await t.pool.connect();
    try {
      const detail = await showRun(c, 'scoring', championRun, featureReports);
      const text = formatRunDetail(detail, featureReports);
      const [own, beside] = rows.map((r) => r.auc.toFixed(3));
      expect(text).toMatch(/\nRealised performance beside the challenger \(mature as of \d{4}-\d\d-\d\d, the same outcomes for both\):\n/);
      expect(text).toMatch(new RegExp(`\\n  champion customer-value \\S+ \\(run ${championRun}\\) +${own} `));
      expect(text).toMatch(new RegExp(`\\n  challenger customer-value-b 2\\.0\\.0 \\(run ${secondRun}\\) +${beside} `));
      const page = renderRunHtml(detail, { reports: featureReports });
      expect(page).toContain('<h2>Champion and challenger</h2>');
      expect(page).toMatch(
        new RegExp(`<table id="challenger-performance">.*<td>challenger customer-value-b 2\\.0\\.0 \\(run ${secondRun}\\)</td><td class="n">${beside}</td>`),
      );
      // Without the features' reports the page and the text say nothing of the challenger.
      expect(formatRunDetail(detail)).not.toContain('Realised performance beside');
    } finally {
      c.release();
    }
  });

  it('the --min-auc gate judges published runs only', async () => {
    const c = await t.pool.connect();
    try {
      // The second model's run is newer and mature too, but readers never saw its scores: the gate names the published run.
      expect(await performanceGate(c, { schema: 'scoring' }, 'customer-value', 0.99)).toMatch(
        new RegExp(`^the realised AUC of model "customer-value" fell to [0-9.]+ \\(run ${championRun},`),
      );
    } finally {
      c.release();
    }
  });
});

function rankSumAuc(rows: readonly { p: number; y: number }[]): number {
  const sorted = [...rows].sort((x, y) => x.p - y.p);
  let rankSum = 0;
  let positives = 0;
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j < sorted.length && sorted[j]!.p === sorted[i]!.p) j++;
    const meanRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) {
      if (sorted[k]!.y !== 1) continue;
      rankSum += meanRank;
      positives++;
    }
    i = j;
  }
  const negatives = sorted.length - positives;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}
