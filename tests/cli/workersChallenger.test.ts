import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../src/model/backend.js';
import type { ChallengerComparison } from '../../src/features/challenger/comparison.js';
import { follow, runCli, startCli, waitForLog, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitUntil } from '../helpers/hold.js';
import { holdChunk } from '../helpers/holdChunk.js';
import { makeModel } from '../helpers/makeModel.js';
import { modelCopy } from '../helpers/run.js';
import { seedWithRejects } from '../helpers/state.js';

const started = (l: Record<string, unknown>) => typeof l.run_id === 'string' && /started/.test(String(l.msg));
const output = (r: CliResult) => r.stderr + r.stdout.slice(-3000);
const runIdOf = (r: CliResult) => r.logs.find(started)?.run_id as string;

/** A run's table: its row count and an md5 of the ordered (customer_id, score). */
async function digest(t: TestDatabase, runId: string): Promise<{ n: number; md5: string }> {
  const { rows } = await t.pool.query<{ n: number; md5: string }>(
    `SELECT count(*)::int AS n, md5(string_agg(customer_id::text || ':' || score::text, ',' ORDER BY customer_id)) AS md5 FROM scoring.score_data WHERE run_id = $1`,
    [runId],
  );
  return rows[0]!;
}

/** What the ledger holds of a champion run and its challenger: both tables' digests, the challenger's counts, cut points and chunks, and the comparison. */
async function outcome(t: TestDatabase, runId: string) {
  const champion = await t.pool.query<{ status: string; comparison: ChallengerComparison }>(
    `SELECT status, stats->'challenger' AS comparison FROM scoring.score_runs WHERE run_id = $1`,
    [runId],
  );
  const sibling = await t.pool.query<{ run_id: string; status: string; scored: number; rejected: number; cuts: number[] | null; chunks_not_done: number }>(
    `SELECT run_id::text, status, rows_scored::int AS scored, rows_rejected::int AS rejected, score_cuts AS cuts,
            (SELECT count(*)::int FROM scoring.score_chunks ch WHERE ch.run_id = r.run_id AND ch.status <> 'done') AS chunks_not_done
       FROM scoring.score_runs r WHERE champion_run_id = $1`,
    [runId],
  );
  const c = sibling.rows[0]!;
  const rejects = await t.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM scoring.score_rejects WHERE run_id = $1`, [c.run_id]);
  return {
    champion: champion.rows[0]!,
    championTable: await digest(t, runId),
    challenger: c,
    challengerTable: await digest(t, c.run_id),
    challengerRejects: rejects.rows[0]!.n,
  };
}

/** How many processes committed the run's chunks. */
async function workersOf(t: TestDatabase, runId: string): Promise<number> {
  const { rows } = await t.pool.query<{ n: number }>(
    `SELECT count(DISTINCT claim_pid)::int AS n FROM scoring.score_chunks WHERE run_id = $1 AND status = 'done'`,
    [runId],
  );
  return rows[0]?.n ?? 0;
}

/** `--challenger DIR` with `--workers` (issue 19/17): every worker scores the challenger too, taking it from the run's ledger. */
describe('a shared run with a challenger (run --workers N --challenger DIR)', () => {
  let t: TestDatabase;
  let champion: string;
  let logistic: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedWithRejects(t, 3000, 23); // rejects in every chunk, for both models
    await selectBackend('cpu'); // the challenger is built with TF.js
    champion = await modelCopy((m) => (m.output.bands = [{ name: 'low', below: 0.3 }, { name: 'mid', below: 0.6 }, { name: 'high' }]));
    logistic = await mkdtemp(join(tmpdir(), 'sj-challenger-'));
    const made = await makeModel(logistic, { hidden: [], seed: 11, manifest: { name: 'tiny-logistic', version: '2.0.0' } });
    made.model.dispose();
  }, 30_000);
  afterAll(async () => t.drop());

  it('--workers 2 --challenger DIR gives the same champion and challenger tables and the same comparison as --challenger DIR unshared, with both processes scoring', async () => {
    const args = ['--model', champion, '--challenger', logistic, '--chunk-size', '100'];
    const alone = await runCli(['run', ...args], t.env);
    expect(alone.code, output(alone)).toBe(0);
    const want = await outcome(t, runIdOf(alone));
    expect(want.challengerTable.n).toBeGreaterThan(2000);
    expect(want.challengerRejects).toBeGreaterThan(0);

    // Held inside chunk 3's commit until the local worker has joined, so that both processes score.
    const hold = await holdChunk(t, 3);
    const child = startCli(['run', '--workers', '2', ...args], t.env);
    try {
      await follow(child).until('the local worker joined with the challenger', (l) =>
        /joined run \d+ as a worker .* with challenger tiny-logistic 2\.0\.0/.test(String(l.msg)),
      );
    } finally {
      await hold.release();
    }
    const shared = await child.result;
    expect(shared.code, output(shared)).toBe(0);
    const runId = runIdOf(shared);
    expect(await workersOf(t, runId)).toBe(2);
    const got = await outcome(t, runId);
    expect(got.championTable).toEqual(want.championTable);
    expect(got.challengerTable).toEqual(want.challengerTable);
    expect({ ...got.challenger, run_id: undefined }).toEqual({ ...want.challenger, run_id: undefined });
    expect(got.challengerRejects).toBe(want.challengerRejects);
    expect(got.challenger).toMatchObject({ status: 'succeeded', chunks_not_done: 0 });
    // The comparison from every worker's chunks (the tables), not from the coordinator's own.
    // (Each run's drift is against the run published before it: not the same baseline for the two.)
    const { correlation, psi, drift: _drift, ...counts } = got.champion.comparison;
    const { correlation: wantR, psi: wantPsi, drift: _wantDrift, ...wantCounts } = want.champion.comparison;
    expect({ ...counts, run_id: undefined }).toEqual({ ...wantCounts, run_id: undefined });
    expect(counts.customers).toBe(want.challengerTable.n);
    expect(correlation).toBeCloseTo(wantR!, 9);
    expect(psi).toBeCloseTo(wantPsi!, 9);
  }, 90_000);

  it('kill -9 of the coordinator of `run --workers 1 --challenger DIR` while a worker scores: `resume` gives both tables of an unshared run, each customer once', async () => {
    const args = ['--model', champion, '--challenger', logistic, '--chunk-size', '100'];
    const alone = await runCli(['run', ...args], t.env);
    expect(alone.code, output(alone)).toBe(0);
    const want = await outcome(t, runIdOf(alone));
    // The coordinator waits inside chunk 3's commit (both models' rows) while the worker scores, and is killed there.
    const hold = await holdChunk(t, 3);
    const coordinator = startCli(['run', '--workers', '1', '--chunk-lease', '2', ...args], t.env);
    const runId = (await waitForLog(coordinator, started)).run_id as string;
    const w = startCli(['work', '--run', runId], t.env);
    try {
      await waitForLog(w, (l) => /chunk \d+ done/.test(String(l.msg)));
      coordinator.kill('SIGKILL');
      await coordinator.result;
    } finally {
      await hold.release();
    }
    const rw = await w.result;
    expect(rw.code, output(rw)).toBe(0);
    expect(await workersOf(t, runId)).toBeGreaterThanOrEqual(1);
    await waitUntil(
      'the run to be resumable',
      async () => {
        const r = await runCli(['resume', runId], t.env);
        return r.code === 0 ? r : undefined;
      },
      30_000,
      1000,
    );
    const got = await outcome(t, runId);
    expect(got.championTable).toEqual(want.championTable);
    expect(got.challengerTable).toEqual(want.challengerTable);
    expect(got.challengerRejects).toBe(want.challengerRejects);
    expect(got.challenger).toMatchObject({ status: 'succeeded', chunks_not_done: 0, scored: want.challenger.scored, rejected: want.challenger.rejected });
    expect(got.champion.comparison.customers).toBe(want.champion.comparison.customers);
  }, 120_000);

  it("a scorejob work whose challenger files are not the run's exits 2 with one line naming the dir; one without flags joins the champion's run (never its challenger's) and scores both", async () => {
    const other = await modelCopy((m) => (m.version = '2.0.1'), logistic);
    const hold = await holdChunk(t, 3);
    const child = startCli(['run', '--workers', '1', '--model', champion, '--challenger', logistic, '--chunk-size', '100'], t.env);
    let runId: string;
    let remote: ReturnType<typeof startCli> | undefined;
    try {
      runId = (await follow(child).until('the run started', started)).run_id as string;
      await hold.reached();
      const work = await runCli(['work', '--run', runId, '--model', champion, '--challenger', other, '--wait', '5'], t.env);
      expect(work.code, output(work)).toBe(2);
      expect(work.stderr.trim().split('\n')).toHaveLength(1);
      expect(work.stderr).toMatch(
        new RegExp(
          `the challenger's model files in ${other.replaceAll('/', '\\/')} are not run ${runId}'s challenger's \\(run \\d+: sha256 \\w+… here, \\w+… in the run\\)`,
        ),
      );
      // Its challenger's run is not one to join by itself.
      const sibling = (await t.pool.query<{ id: string }>(`SELECT run_id::text AS id FROM scoring.score_runs WHERE champion_run_id = $1`, [runId])).rows[0]!.id;
      const wrong = await runCli(['work', '--run', sibling, '--wait', '5'], t.env);
      expect(wrong.code, output(wrong)).toBe(2);
      expect(wrong.stderr).toMatch(new RegExp(`run ${sibling} is the challenger of run ${runId}; join that run instead`));
      // Without --run or --challenger, a worker joins the champion's run (not its newer challenger's) and takes the challenger from the ledger.
      remote = startCli(['work', '--wait', '5'], t.env);
      const logs = follow(remote);
      const joined = await logs.until('the remote worker joined', (l) => /joined run/.test(String(l.msg)));
      expect(joined).toMatchObject({ run_id: runId, challenger_run_id: sibling });
      await logs.until('a chunk done by the remote worker', (l) => /^chunk \d+ done$/.test(String(l.msg)));
    } finally {
      await hold.release();
    }
    const done = await child.result;
    expect(done.code, output(done)).toBe(0);
    const worked = await remote.result;
    expect(worked.code, output(worked)).toBe(0);
    expect(await workersOf(t, runId)).toBe(2);
    expect((await outcome(t, runId)).challenger).toMatchObject({ status: 'succeeded', chunks_not_done: 0 });
  }, 90_000);
});
