import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults } from '../../src/config.js';
import { startCli, type CliResult } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdChunk } from '../helpers/holdChunk.js';
import { modelCopy, runInProcess, shippedModelDir } from '../helpers/run.js';
import { expectRefusedUnchanged, ledgerState, seedWithRejects } from '../helpers/state.js';

const started = (l: Record<string, unknown>) => typeof l.run_id === 'string' && /started/.test(String(l.msg));
const runIdOf = (r: CliResult) => r.logs.find(started)?.run_id as string;
let ticks = 0;
/** What `scorejob schedule` gives each tick's child run: a tick of its own (a minute no run covers yet). */
const scheduledTick = () => ['--trigger', 'schedule', '--tick-at', new Date(Date.UTC(2099, 0, 1, 0, ++ticks)).toISOString(), '--if-due', '* * * * *'];

/**
 * README "A challenger beside the champion": a challenger published by hand stays what customer_scores
 * shows until a person says otherwise; the next scheduled run of the old champion does not silently put
 * the champion back.
 */
describe('a promoted challenger and the next run', () => {
  let t: TestDatabase;
  let challenger: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedWithRejects(t, 600, 31);
    // Another model (its files' sha256 differ) that scores like the champion: past every publish gate.
    challenger = await modelCopy((m) => (m.version = '2.0.0'));
  });
  afterAll(async () => t.drop());

  const shown = async () =>
    (await t.pool.query<{ v: string; run_id: string }>('SELECT DISTINCT model_version v, run_id::text FROM scoring.customer_scores')).rows;

  /** A run with the challenger beside it, then the challenger published by hand; returns the challenger's run. */
  async function promote(): Promise<string> {
    const { runId: id } = await runInProcess(t, { modelDir: shippedModelDir, challengerDir: challenger, chunkSize: 200 });
    const published = await runCliInProcess(['publish', id, '--challenger', '--log-level', 'silent'], t.env);
    expect(published.stderr).toBe('');
    expect(published.code).toBe(0);
    const rows = await shown();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.v).toBe('2.0.0');
    return rows[0]!.run_id;
  }

  it('refuses (exit 2, one line, nothing written) a run or a scheduled tick of the old champion; --replace-promoted goes back, saying so at warn', async () => {
    const promoted = await promote();
    const before = await ledgerState(t);
    const advice = new RegExp(
      `^scorejob: scoring\\.customer_scores for customer-value on postgres@[^ ]+ shows the challenger customer-value 2\\.0\\.0 \\(run ${promoted}, challenger of run \\d+\\), published by hand by .* UTC; ` +
        `this run of .* \\(version 1\\.0\\.0\\) would replace it with another model's scores: to keep the challenger, point --model at its directory \\(${challenger}\\) .*; to go back to this model, run once with \`scorejob run --replace-promoted\`\n$`,
    );
    await expectRefusedUnchanged(t, before, await runCliInProcess(['run', '--model', shippedModelDir], t.env), advice);
    await expectRefusedUnchanged(
      t,
      before,
      await runCliInProcess(['run', '--model', shippedModelDir, ...scheduledTick()], t.env),
      /shows the challenger customer-value 2\.0\.0/,
    );
    // A dry run publishes nothing: not refused.
    await runInProcess(t, { modelDir: shippedModelDir, dryRun: true, chunkSize: defaults.chunkSize });
    expect(await shown()).toEqual([{ v: '2.0.0', run_id: promoted }]);

    const back = await runCliInProcess(['run', '--model', shippedModelDir, '--replace-promoted'], t.env);
    expect(back.code).toBe(0);
    expect(
      back.logs.some(
        (l) => l.level === 40 && l.replace_promoted === true && /--replace-promoted: this run of .* \(version 1\.0\.0\) replaces it/.test(String(l.msg)),
      ),
    ).toBe(true);
    expect(await shown()).toEqual([{ v: '1.0.0', run_id: runIdOf(back) }]);
    // Back to a champion's run: the next plain run goes on as ever.
    await runInProcess(t, { modelDir: shippedModelDir, chunkSize: defaults.chunkSize });
  });

  it("following the refusal's advice, --model at the challenger's directory, the run publishes and keeps the challenger's version, run after run", async () => {
    await promote();
    const refused = await runCliInProcess(['run', '--model', shippedModelDir], t.env);
    expect(refused.code).toBe(2);
    const dir = /point --model at its directory \((.*?)\) for this/.exec(refused.stderr)?.[1];
    expect(dir).toBe(challenger);
    for (let i = 0; i < 2; i++) {
      const kept = await runCliInProcess(['run', '--model', dir!, ...scheduledTick()], t.env);
      expect(kept.code).toBe(0);
      expect(await shown()).toEqual([{ v: '2.0.0', run_id: runIdOf(kept) }]);
      const kind = await t.pool.query<{ kind: string }>('SELECT kind FROM scoring.score_runs WHERE run_id = $1', [runIdOf(kept)]);
      expect(kind.rows[0]!.kind).toBe('full');
    }
  });

  it('a run killed before the promotion is not resumed over it (exit 2, customer_scores unchanged)', async () => {
    await runInProcess(t, { modelDir: shippedModelDir, challengerDir: challenger, chunkSize: 200, replacePromoted: true });
    const hold = await holdChunk(t, 2);
    let killed: string;
    try {
      const child = startCli(['run', '--model', shippedModelDir, '--chunk-size', '100', '--replace-promoted'], t.env);
      await hold.reached();
      child.kill('SIGKILL');
      await child.result;
      await hold.endJobSessions();
      killed = (await t.pool.query<{ id: string }>(`SELECT max(run_id)::text id FROM scoring.score_runs WHERE kind <> 'challenger'`)).rows[0]!.id;
    } finally {
      await hold.release();
    }
    const champion = (await t.pool.query<{ id: string }>(`SELECT max(champion_run_id)::text id FROM scoring.score_runs`)).rows[0]!.id;
    const published = await runCliInProcess(['publish', champion, '--challenger', '--log-level', 'silent'], t.env);
    expect(published.code).toBe(0);
    const promoted = await shown();
    expect(promoted.map((r) => r.v)).toEqual(['2.0.0']);
    const before = await ledgerState(t);
    const resumed = await runCliInProcess(['resume', killed], t.env);
    expect(resumed.stderr).toMatch(
      /shows the challenger customer-value 2\.0\.0 .*this resume of .* would replace it .*to go back to this model, start a new run with `scorejob run --replace-promoted`\n$/,
    );
    expect(resumed.code).toBe(2);
    expect(await shown()).toEqual(promoted);
    expect((await ledgerState(t)).publishedRun).toBe(before.publishedRun);
    const status = await t.pool.query<{ status: string }>('SELECT status FROM scoring.score_runs WHERE run_id = $1', [killed]);
    expect(status.rows[0]!.status).not.toBe('succeeded');
  });
});
