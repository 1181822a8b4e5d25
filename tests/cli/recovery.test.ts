import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { startCli, waitForLog } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitUntil } from '../helpers/hold.js';
import { modelCopy, runInProcess } from '../helpers/run.js';
import { judgePolls, publishedSnapshot, startReader } from '../helpers/state.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const snapshot = publishedSnapshot;

async function runRow(t: TestDatabase, runId: string): Promise<Record<string, any>> {
  const { rows } = await t.pool.query('SELECT * FROM scoring.score_runs WHERE run_id = $1', [runId]);
  return rows[0] as Record<string, any>;
}

/** Starts a run that takes a while (many small chunks) and waits until `chunks` chunks committed. */
async function startSlowRun(t: TestDatabase, chunks: number, extra: string[] = []) {
  // Tiny chunks: each costs a few round trips, so 10,000 rows (500 chunks) take seconds, long enough to interrupt.
  const child = startCli(['run', '--chunk-size', '20', ...extra], t.env);
  const started = await waitForLog(child, (l) => typeof l.run_id === 'string' && /started/.test(String(l.msg)));
  await waitForLog(child, (l) => typeof l.chunks_done === 'number' && l.chunks_done >= chunks);
  return { child, runId: started.run_id as string };
}

describe('runs that survive failure', () => {
  const customers = 10000;
  let t: TestDatabase;
  let baseline: { runs: string[]; scores: Map<string, number> };
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers, seed: 21 });
    await runInProcess(t, { chunkSize: 10000 });
    baseline = await snapshot(t);
  });
  afterAll(async () => t.drop());

  it('kill -9 mid-run: runs shows it interrupted, resume finishes it, the table equals an uninterrupted run, a polling reader saw one complete run throughout (the previous one until the resume published)', async () => {
    // A reader polling the published view from before the run starts until after the resume has published.
    const reader = startReader(t);
    const { child, runId } = await startSlowRun(t, 5);
    child.kill('SIGKILL');
    await child.result;
    expect((await snapshot(t)).runs).toEqual(baseline.runs);

    // A killed run's lock connection is gone at once, but a live run whose connection dropped gets a
    // grace (6 s) to come back: `runs` tells the two apart once the grace is over.
    const killedAt = Date.now();
    const listed = await waitUntil('runs to show the killed run interrupted', async () => {
      const runs = await runCliInProcess(['runs', '--json'], t.env);
      expect(runs.code).toBe(0);
      const row = (JSON.parse(runs.stdout) as { run_id: string; status: string; resume_command: string }[]).find((r) => r.run_id === runId);
      return row?.status === 'interrupted' ? row : undefined;
    });
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    expect(listed?.resume_command).toBe(`scorejob resume ${runId}`);
    const done = await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM scoring.score_chunks WHERE run_id = $1 AND status = 'done'`, [runId]);
    expect(done.rows[0]?.n).toBeGreaterThanOrEqual(5);

    const resumed = await runCliInProcess(['resume', runId], t.env);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.logs.every((l) => l.run_id === undefined || l.run_id === runId)).toBe(true);
    const after = await snapshot(t);
    expect(after.runs).toEqual([runId]);
    expect(after.scores).toEqual(baseline.scores); // same model, same rows: identical to the uninterrupted run
    const dupes = await t.pool.query(`SELECT customer_id FROM scoring."score_data_${runId}" GROUP BY 1 HAVING count(*) > 1`);
    expect(dupes.rows).toEqual([]);
    const run = await runRow(t, runId);
    expect(run).toMatchObject({ status: 'succeeded', resumes: 1, rows_scored: String(customers) });

    // Every poll saw one complete run: the previous one until the resume published, then the new one.
    const polls = await reader.stop();
    const { bad, sequence } = judgePolls(polls, [...baseline.runs, runId], baseline.scores.size);
    expect(polls.length).toBeGreaterThan(20);
    expect(bad).toEqual([]);
    expect(sequence).toEqual([...baseline.runs, runId]);
  });

  it('SIGTERM mid-run: exit 143, status interrupted, resumable, nothing lost', async () => {
    const before = await snapshot(t);
    const { child, runId } = await startSlowRun(t, 3);
    child.kill('SIGTERM');
    const r = await child.result;
    expect(r.code).toBe(143);
    const run = await runRow(t, runId);
    expect(run.status).toBe('interrupted');
    const counted = await t.pool.query<{ chunks: string; rows: string }>(
      `SELECT (SELECT coalesce(sum(rows_scored), 0) FROM scoring.score_chunks WHERE run_id = $1 AND status = 'done')::text chunks,
              (SELECT count(*) FROM scoring."score_data_${runId}")::text AS rows`,
      [runId],
    );
    expect(counted.rows[0]?.rows).toBe(counted.rows[0]?.chunks); // every committed chunk's rows are there, nothing more
    expect(run.rows_scored).toBe(counted.rows[0]?.rows);
    expect((await snapshot(t)).runs).toEqual(before.runs);
    const resumed = await runCliInProcess(['resume', runId], t.env);
    expect(resumed.code).toBe(0);
    expect((await snapshot(t)).scores).toEqual(baseline.scores);
  });

  it('two runs started at once: exactly one runs, the other exits 75 naming the holder', async () => {
    const { child: a } = await startSlowRun(t, 1);
    const b = await runCliInProcess(['run'], t.env);
    expect(b.code).toBe(75);
    expect(b.stderr).toMatch(/another run holds the lock on .*: run \d+ \(pid \d+ on /);
    const ra = await a.result;
    expect(ra.code).toBe(0);
    expect((await snapshot(t)).scores).toEqual(baseline.scores);
  });

  it('resume refuses a succeeded run, a running run and a run whose model changed (exit 2)', async () => {
    const last = (await t.pool.query<{ run_id: string }>(`SELECT max(run_id)::text run_id FROM scoring.score_runs WHERE status = 'succeeded'`)).rows[0]
      ?.run_id as string;
    const ok = await runCliInProcess(['resume', last], t.env);
    expect(ok.code).toBe(2);
    expect(ok.stderr).toMatch(/already succeeded/);

    const { child, runId } = await startSlowRun(t, 1);
    const running = await runCliInProcess(['resume', runId], t.env);
    expect(running.code).toBe(2);
    expect(running.stderr).toMatch(/still running/);
    child.kill('SIGTERM');
    expect((await child.result).code).toBe(143);

    // The same run, but its model files changed since it started.
    const dir = await modelCopy();
    const { child: c2, runId: changed } = await startSlowRun(t, 1, ['--model', dir]);
    c2.kill('SIGTERM');
    await c2.result;
    const manifest = join(dir, 'manifest.json');
    await writeFile(manifest, JSON.stringify({ ...JSON.parse((await import('node:fs')).readFileSync(manifest, 'utf8')), description: 'edited' }));
    const refused = await runCliInProcess(['resume', changed], t.env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/model files .* changed since run \d+ started/);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a lost connection is retried and the run succeeds', async () => {
    const child = startCli(['run', '--chunk-size', '100', '--log-level', 'debug'], t.env);
    const started = await waitForLog(child, (l) => /started/.test(String(l.msg)));
    await waitForLog(child, (l) => typeof l.chunks_done === 'number' && l.chunks_done >= 2);
    const killed = await t.pool.query<{ n: number }>(
      `SELECT count(pg_terminate_backend(pid))::int n FROM pg_stat_activity WHERE datname = current_database() AND application_name IN ('scorejob writer', 'scorejob reader')`,
    );
    expect(killed.rows[0]?.n).toBeGreaterThan(0);
    const r = await child.result;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.logs.some((l) => /retrying/.test(String(l.msg)))).toBe(true);
    const chunks = await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM scoring.score_chunks WHERE run_id = $1 AND attempts > 1`, [started.run_id]);
    expect(chunks.rows[0]?.n).toBeGreaterThan(0);
    expect((await snapshot(t)).scores).toEqual(baseline.scores);
  });

  it('with retries exhausted the run fails with a clear error, then resumes', async () => {
    const child = startCli(['run', '--chunk-size', '100', '--chunk-attempts', '1'], t.env);
    const started = await waitForLog(child, (l) => /started/.test(String(l.msg)));
    const runId = started.run_id as string;
    await waitForLog(child, (l) => typeof l.chunks_done === 'number' && l.chunks_done >= 2);
    await t.pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name IN ('scorejob writer', 'scorejob reader')`,
    );
    const r = await child.result;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`run ${runId} failed: connection to .* lost.*scorejob resume ${runId}`));
    const run = await runRow(t, runId);
    expect(run).toMatchObject({ status: 'failed', error_kind: 'database' });
    expect(run.error).toMatch(/connection to .* lost/);
    const resumed = await runCliInProcess(['resume', runId], t.env);
    expect(resumed.code).toBe(0);
    expect((await snapshot(t)).scores).toEqual(baseline.scores);
  });

  it('a permanent error (a feature column changed to text) fails without retries; runs show gives the root cause in one line', async () => {
    const child = startCli(['run', '--chunk-size', '100'], t.env);
    const started = await waitForLog(child, (l) => /started/.test(String(l.msg)));
    const runId = started.run_id as string;
    await waitForLog(child, (l) => typeof l.chunks_done === 'number' && l.chunks_done >= 2);
    await t.pool.query(`ALTER TABLE customers ALTER COLUMN revenue_12m TYPE text USING 'n/a'`);
    try {
      const r = await child.result;
      expect(r.code).toBe(1);
      const run = await runRow(t, runId);
      expect(run.status).toBe('failed');
      expect(run.error).toBe('column revenue_12m of customers is text, expected a number');
      const retried = await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM scoring.score_chunks WHERE run_id = $1 AND attempts > 1`, [runId]);
      expect(retried.rows[0]?.n).toBe(0);
      const show = await runCliInProcess(['runs', 'show', runId], t.env);
      expect(show.code).toBe(0);
      expect(show.stdout).toContain('error        column revenue_12m of customers is text, expected a number');
      expect(show.stdout).toContain(`next step    scorejob resume ${runId}`);
      expect((await snapshot(t)).scores).toEqual(baseline.scores);
    } finally {
      await t.pool.query(`ALTER TABLE customers ALTER COLUMN revenue_12m TYPE numeric(12,2) USING NULL`);
    }
  });
});
