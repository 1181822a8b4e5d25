import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, runInProcess } from '../helpers/run.js';

/** `scorejob rollback` as a user runs it: exit 0 when done, exit 2 and one line for every refusal. */
describe('scorejob rollback', () => {
  let t: TestDatabase;
  const ids: Record<'first' | 'second' | 'dry' | 'gated', string> = { first: '', second: '', dry: '', gated: '' };

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 200, seed: 8, nullFraction: 0.05 });
    ids.first = (await runInProcess(t, { chunkSize: 100, maxRejectRatio: 1 })).runId;
    ids.second = (await runInProcess(t, { chunkSize: 100, maxRejectRatio: 1 })).runId;
    ids.dry = (await runInProcess(t, { chunkSize: 100, dryRun: true, maxRejectRatio: 1 })).runId;
    const strict = await modelCopy((m) => delete (m.features as { fill?: unknown }[]).find((f) => f.fill !== undefined)?.fill);
    await expect(runInProcess(t, { modelDir: strict, chunkSize: 100, maxRejectRatio: 0 })).rejects.toMatchObject({ exitCode: 1 });
    ids.gated = String(Number(ids.dry) + 1);
  });
  afterAll(async () => t.drop());

  const refused = async (args: string[], message: RegExp): Promise<void> => {
    const r = await runCliInProcess(['rollback', ...args, '--log-level', 'silent'], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  };

  it('refuses a dry run, a failed run, the published run, an unknown run or model, with exit 2 and one line', async () => {
    await refused([ids.dry], /was a dry run/);
    await refused([ids.gated], /is failed: only a run that succeeded and was published can be put back/);
    await refused([ids.second], /is already published/);
    await refused(['123'], /there is no run 123/);
    await refused(['x1'], /is not a run number/);
    await refused(['--model-name', 'nope'], /model nope \(--model-name\) has no published run/);
  });

  it('puts the previous run back (exit 0), shown by `runs` with who and why', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'sj-hook-')), 'hook.txt');
    // The hook sees the new scores (it runs after the commit); its failure is logged, not the command's.
    const read = `const c = new (await import('pg')).default.Client(process.env.DATABASE_URL); await c.connect(); console.log((await c.query('SELECT DISTINCT run_id FROM scoring.customer_scores')).rows[0].run_id); await c.end();`;
    const hook = `node --input-type=module -e "${read}" > ${out}; echo "$SCOREJOB_RUN_ID $SCOREJOB_PUBLISH_KIND" >> ${out}; exit 3`;
    const r = await runCliInProcess(['rollback', '--reason', 'source was half loaded', '--on-publish-command', hook], t.env);
    expect(r.code).toBe(0);
    expect(await readFile(out, 'utf8')).toBe(`${ids.first}\n${ids.first} rollback\n`);
    expect(r.logs.some((l) => l.level === 40 && String(l.msg).startsWith('--on-publish-command failed (exit code 3)'))).toBe(true);
    expect(r.logs.some((l) => l.rollback === true && l.run_id === ids.first && l.from_run_id === ids.second)).toBe(true);
    const scores = await t.pool.query('SELECT DISTINCT run_id::text AS r FROM scoring.customer_scores');
    expect(scores.rows).toEqual([{ r: ids.first }]);
    const runs = await runCliInProcess(['runs'], t.env);
    expect(runs.stdout).toMatch(
      new RegExp(
        `Rollbacks \\(newest first\\):\\n  \\S+ \\S+ UTC  customer-value: run ${ids.second} -> run ${ids.first} \\(current\\) by \\S+: source was half loaded\\n`,
      ),
    );
    const json = JSON.parse((await runCliInProcess(['runs', '--json'], t.env)).stdout) as {
      run_id: string;
      current: boolean;
      publications: { kind: string; reason: string | null }[];
    }[];
    const first = json.find((i) => i.run_id === ids.first);
    expect(first?.current).toBe(true);
    expect(first?.publications.map((p) => [p.kind, p.reason])).toEqual([
      ['publish', null],
      ['rollback', 'source was half loaded'],
    ]);
  });

  it('refuses a run whose scores retention dropped', async () => {
    const next = await runInProcess(t, { chunkSize: 100, keepRuns: 1, maxRejectRatio: 1 });
    const kept = await t.pool.query('SELECT DISTINCT run_id::text AS r FROM scoring.customer_score_history');
    expect(kept.rows).toEqual([{ r: next.runId }]);
    await refused([ids.second], /is not kept: retention dropped its scores/);
    await refused([], /has no kept run published before run/);
  });
});
