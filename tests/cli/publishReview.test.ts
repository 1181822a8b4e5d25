import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../src/model/backend.js';
import type { ChallengerComparison } from '../../src/features/challenger/comparison.js';
import { type CliResult } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { makeModel } from '../helpers/makeModel.js';
import { shippedModelDir } from '../helpers/run.js';
import { seedWithRejects } from '../helpers/state.js';

const started = (l: Record<string, unknown>) => typeof l.run_id === 'string' && /started/.test(String(l.msg));
const runIdOf = (r: CliResult) => r.logs.find(started)?.run_id as string;

/**
 * README "A challenger beside the champion" and "Watching a run": nothing reaches customer_scores past a
 * gate without a person's reason, a challenger unlike its champion is refused, and what readers lose is said.
 */
describe('publish --challenger and publish --force after review', () => {
  let t: TestDatabase;
  let logistic: string;
  let runId: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedWithRejects(t, 1500, 41);
    await selectBackend('cpu');
    // Another model altogether: a logistic layer on other features, unlike the shipped champion.
    logistic = await mkdtemp(join(tmpdir(), 'sj-review-'));
    (await makeModel(logistic, { hidden: [], seed: 11, manifest: { name: 'tiny-logistic', version: '2.0.0' } })).model.dispose();
    const run = await runCliInProcess(['run', '--model', shippedModelDir, '--challenger', logistic, '--reasons', '2', '--chunk-size', '500'], t.env);
    expect(run.code).toBe(0);
    runId = runIdOf(run);
  });
  afterAll(async () => t.drop());

  const published = async () =>
    (await t.pool.query(`SELECT md5(string_agg(customer_id || ':' || score || ':' || run_id, ',' ORDER BY customer_id)) h FROM scoring.customer_scores`))
      .rows[0].h as string;
  const lastPublication = async () =>
    (
      await t.pool.query<{ run_id: string; kind: string; forced: boolean; reason: string | null }>(
        'SELECT run_id::text, kind, forced, reason FROM scoring.published_runs ORDER BY publication_id DESC LIMIT 1',
      )
    ).rows[0]!;
  async function expectRefused(args: string[], message: RegExp, env = t.env): Promise<void> {
    const before = await published();
    const x = await runCliInProcess(['publish', ...args], env);
    expect(x.stderr).toMatch(message);
    expect(x.code).toBe(2);
    expect(x.stderr.trim().split('\n')).toHaveLength(1);
    expect(await published()).toBe(before);
  }

  it('refuses (exit 2, one line, customer_scores unchanged) a challenger unlike its champion, naming the figures runs show stores', async () => {
    const comparison = (await t.pool.query<{ c: ChallengerComparison }>(`SELECT stats->'challenger' c FROM scoring.score_runs WHERE run_id = $1`, [runId]))
      .rows[0]!.c;
    expect(comparison.correlation!).toBeLessThan(0.5);
    const sibling = comparison.run_id;
    const figures =
      `differs from the champion over the ${comparison.customers} customers both scored: correlation ${comparison.correlation!.toFixed(2)}, under 0.5 \\(--min-correlation\\), ` +
      `top-decile overlap ${(comparison.top_decile_overlap! * 100).toFixed(1)}%, under 30% \\(--min-top-decile-overlap\\)`;
    await expectRefused(
      [runId, '--challenger'],
      new RegExp(
        `^scorejob: the challenger of run ${runId} \\(run ${sibling}\\) ${figures}.*; compare both in \`scorejob runs show ${runId}\`, or after review publish it anyway with \`scorejob publish ${runId} --challenger --force --reason "<what you checked>"\`\\n$`,
      ),
    );
  });

  it('--force without --reason is refused before the database is read (exit 2, one line), for a run and for a challenger', async () => {
    const nowhere = { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' };
    await expectRefused(
      [runId, '--challenger', '--force'],
      /^scorejob: --force needs --reason TEXT: say why the gate may be passed .*e\.g\. `scorejob publish \d+ --challenger --force --reason "<what you checked>"`\n$/,
      nowhere,
    );
    await expectRefused([runId, '--force'], /^scorejob: --force needs --reason TEXT/, nowhere);
    await expectRefused([runId, '--challenger', '--force', '--reason', '  '], /^scorejob: --reason is empty/, nowhere);
    await expectRefused([runId, '--min-correlation', '0.1'], /^scorejob: --min-correlation applies to publish --challenger only\n$/);
  });

  it('following the advice, --force --reason publishes it, recorded as forced with the reason; runs says so; the publish line says the reasons are gone', async () => {
    const forced = await runCliInProcess(['publish', runId, '--challenger', '--force', '--reason', 'new pricing model, signed off by risk'], t.env);
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    const sibling = (await t.pool.query<{ id: string }>('SELECT run_id::text id FROM scoring.score_runs WHERE champion_run_id = $1', [runId])).rows[0]!.id;
    expect(await lastPublication()).toEqual({ run_id: sibling, kind: 'challenger', forced: true, reason: 'new pricing model, signed off by risk' });
    const line = forced.logs.find((l) => l.challenger === true)!;
    expect(line.level).toBe(40);
    expect(String(line.msg)).toMatch(
      new RegExp(
        `by force: \\d+ customers; reason: new pricing model, signed off by risk; scoring\\.customer_score_reasons is empty for this model now: run ${runId}, which it replaces, had each customer's 2 reasons, this one has none`,
      ),
    );
    const reasons = await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM scoring.customer_score_reasons WHERE model_name = 'customer-value'`);
    expect(reasons.rows[0]!.n).toBe(0);
    const runs = await runCliInProcess(['runs', '--log-level', 'silent'], t.env);
    expect(runs.stdout).toMatch(new RegExp(`\\n${sibling} +succeeded .*\\(challenger of run ${runId}\\) .*forced: new pricing model, signed off by risk\\n`));
    const show = await runCliInProcess(['runs', 'show', sibling, '--log-level', 'silent'], t.env);
    expect(show.stdout).toMatch(new RegExp(`\\n  published by force \\S+ by \\S+ \\(replacing run ${runId}\\): new pricing model, signed off by risk\\n`));
  });

  it('the comparison limits are flags: within them, the challenger is published without --force, recorded as not forced', async () => {
    const run = await runCliInProcess(['run', '--model', shippedModelDir, '--challenger', logistic, '--chunk-size', '500', '--replace-promoted'], t.env);
    expect(run.code).toBe(0);
    const second = runIdOf(run);
    // Its scores run against the champion's (r < 0): only the loosest limits let it through.
    const loose = ['--min-correlation', '-1', '--min-top-decile-overlap', '0', '--max-psi-vs-champion', '1000'];
    const ok = await runCliInProcess(['publish', second, '--challenger', ...loose, '--reason', 'trial month', '--log-level', 'silent'], t.env);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(await lastPublication()).toMatchObject({ kind: 'challenger', forced: false, reason: 'trial month' });
  });
});
