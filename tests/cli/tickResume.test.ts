import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { startCli } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdChunk } from '../helpers/holdChunk.js';
import { modelCopy } from '../helpers/run.js';

/**
 * Self-healing ticks through the built CLI against real PostgreSQL: a due tick (`run --if-due`, what
 * the crontab line, `schedule`'s child and every CronJob pod run) resumes its period's failed or
 * interrupted run instead of rescoring from zero; a run a publish gate stopped is left for a person
 * and said once; a new period starts a new run whatever the old one's state.
 */

interface Row {
  run_id: string;
  status: string;
  resumes: number;
  error_kind: string | null;
  tick_at: Date | null;
  started_at: Date;
}

const monthly = ['--if-due', '0 0 1 * *', '--timezone', 'UTC'];

describe('a due tick resumes, and leaves a gated run to a person', () => {
  let t: TestDatabase;
  let nanModel: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 3000, seed: 11 });
    // A model whose output bias is NaN scores every customer NaN: all rejected, the reject gate stops the run.
    nanModel = await modelCopy();
    const weights = join(nanModel, 'weights.bin');
    const bytes = await readFile(weights);
    bytes.writeFloatLE(Number.NaN, bytes.length - 4);
    await writeFile(weights, bytes);
  });
  afterAll(async () => t.drop());

  const runs = async (): Promise<Row[]> =>
    (await t.pool.query<Row>('SELECT run_id::text, status, resumes, error_kind, tick_at, started_at FROM scoring.score_runs ORDER BY run_id')).rows;
  const tick = (extra: string[] = []) => runCliInProcess(['--no-pretty', 'run', '--trigger', 'cron', '--chunk-size', '300', ...monthly, ...extra], t.env);

  it('a run killed -9 half-way is resumed by the next tick (same run, only its unfinished chunks), not restarted', async () => {
    const hold = await holdChunk(t, 4);
    const first = startCli(['--no-pretty', 'run', '--trigger', 'cron', '--chunk-size', '300', ...monthly], t.env);
    try {
      await hold.reached();
      first.kill('SIGKILL');
      await first.result;
      await hold.endJobSessions();
    } finally {
      await hold.release();
    }
    const [killed] = await runs();
    expect(killed).toMatchObject({ status: 'running', resumes: 0 });
    const doneBefore = (
      await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM scoring.score_chunks WHERE run_id = $1 AND status = 'done'`, [killed?.run_id])
    ).rows[0]?.n;
    // Chunk 4 is held; its neighbour on the other writer may have committed.
    expect(doneBefore).toBeGreaterThanOrEqual(3);

    // Within the lock's grace (6 s of heartbeats) a holder whose connection dropped may come back: the tick says "in progress" (75) until then.
    await new Promise((r) => setTimeout(r, 6500));
    const next = await tick();
    expect(next.code, next.stderr).toBe(0);
    expect(next.logs.find((l) => l.due === true)?.msg).toMatch(
      new RegExp(
        `^due: run ${killed?.run_id} for tick \\S+ is marked running but its process is gone .*; resuming run ${killed?.run_id} from its first unfinished chunk$`,
      ),
    );
    expect(next.logs.some((l) => String(l.msg) === `run ${killed?.run_id} resumed: ${10 - (doneBefore ?? 0)} of 10 chunks left`)).toBe(true);
    expect(await runs()).toMatchObject([{ run_id: killed?.run_id, status: 'succeeded', resumes: 1 }]);
    // Each chunk scored once: the three done before the kill kept their single attempt.
    const attempts = (
      await t.pool.query<{ chunk_no: number; attempts: number }>(`SELECT chunk_no, attempts FROM scoring.score_chunks WHERE run_id = $1 ORDER BY chunk_no`, [
        killed?.run_id,
      ])
    ).rows;
    expect(attempts.map((c) => c.attempts)).toEqual(attempts.map(() => 1));
    expect(Number((await t.pool.query('SELECT count(*) FROM scoring.customer_scores')).rows[0]?.count)).toBe(3000);

    const again = await tick();
    expect(again.code).toBe(0);
    expect(again.logs.find((l) => l.reason === 'done')?.msg).toMatch(/^not due: tick \S+ already has succeeded run/);
    expect(await runs()).toHaveLength(1);
  }, 120_000);

  it('a run that failed (the database went away) is resumed; one a model change makes unresumable is replaced by a new run', async () => {
    // This period's run, failed half-way: chunks 6.. undone.
    const [run] = await runs();
    await t.pool.query(
      `UPDATE scoring.score_runs SET status = 'failed', error_kind = 'database', error = 'connection lost (test)', published_at = NULL WHERE run_id = $1`,
      [run?.run_id],
    );
    await t.pool.query(`UPDATE scoring.score_chunks SET status = 'pending' WHERE run_id = $1 AND chunk_no >= 6`, [run?.run_id]);
    await t.pool.query(
      `DELETE FROM scoring."score_data_${run?.run_id}" WHERE customer_id > (SELECT key_lo FROM scoring.score_chunks WHERE run_id = $1 AND chunk_no = 6)`,
      [run?.run_id],
    );
    const resumed = await tick();
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.logs.find((l) => l.due === true)?.reason).toBe('failed');
    expect(await runs()).toMatchObject([{ run_id: run?.run_id, status: 'succeeded', resumes: 2 }]);

    // Failed again, but the model files changed since (a new model on the volume): a new run for the tick.
    await t.pool.query(`UPDATE scoring.score_runs SET status = 'failed', error_kind = 'database', model_sha256 = 'changed' WHERE run_id = $1`, [run?.run_id]);
    const replaced = await tick();
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(
      replaced.logs.some((l) =>
        new RegExp(`^run ${run?.run_id} cannot be resumed \\(the model files in .* changed since run ${run?.run_id} started`).test(String(l.msg)),
      ),
    ).toBe(true);
    const after = await runs();
    expect(after).toHaveLength(2);
    expect(after[1]).toMatchObject({ status: 'succeeded', resumes: 0 });
    expect(after[1]?.tick_at).toEqual(after[0]?.tick_at);

    // A failed challenger run beside it (`run --challenger` of a new version under the same name) is not the
    // tick's run: with the champion stopped by a gate, the tick waits for a person (no resume of the challenger).
    await t.pool.query(`UPDATE scoring.score_runs SET status = 'failed', error_kind = 'gate' WHERE run_id = $1`, [after[1]?.run_id]);
    await t.pool.query(
      `INSERT INTO scoring.score_runs (status, error_kind, trigger, kind, champion_run_id, model_name, model_version, model_sha256, backend, tick_at, host, pid)
       SELECT 'failed', 'database', trigger, 'challenger', run_id, model_name, '2', 'y', backend, tick_at, host, pid FROM scoring.score_runs WHERE run_id = $1`,
      [after[1]?.run_id],
    );
    const beside = await tick();
    expect(beside.code, beside.stderr).toBe(0);
    expect(beside.logs.find((l) => l.reason !== undefined)?.reason).toBe('waiting');
    await t.pool.query(`DELETE FROM scoring.score_runs WHERE kind = 'challenger'`);
    await t.pool.query(`UPDATE scoring.score_runs SET status = 'succeeded', error_kind = NULL WHERE run_id = $1`, [after[1]?.run_id]);
  }, 120_000);

  it('`schedule --catch-up` resumes the failed run of its latest tick too (its child is a due tick)', async () => {
    const before = await runs();
    const last = before.at(-1) as Row;
    // The monthly tick's latest run, failed half-way (as the outage test above made it).
    await t.pool.query(`UPDATE scoring.score_runs SET status = 'failed', error_kind = 'database', error = 'connection lost (test)' WHERE run_id = $1`, [
      last.run_id,
    ]);
    await t.pool.query(`UPDATE scoring.score_chunks SET status = 'pending' WHERE run_id = $1 AND chunk_no >= 8`, [last.run_id]);
    await t.pool.query(
      `DELETE FROM scoring."score_data_${last.run_id}" WHERE customer_id > (SELECT key_lo FROM scoring.score_chunks WHERE run_id = $1 AND chunk_no = 8)`,
      [last.run_id],
    );
    const child = startCli(['--no-pretty', 'schedule', '--cron', '0 0 1 * *', '--timezone', 'UTC', '--catch-up', '--chunk-size', '300'], t.env);
    const { waitForLog } = await import('../helpers/cli.js');
    await waitForLog(child, (l) => new RegExp(`^run ${last.run_id} for tick \\S+ succeeded$`).test(String(l.msg)), 60_000);
    child.kill('SIGTERM');
    const r = await child.result;
    expect(r.code).toBe(0);
    expect(r.logs.some((l) => String(l.msg) === `run ${last.run_id} resumed: 3 of 10 chunks left`)).toBe(true);
    expect(await runs()).toHaveLength(before.length);
    expect((await runs()).at(-1)).toMatchObject({ run_id: last.run_id, status: 'succeeded', resumes: last.resumes + 1 });
  }, 120_000);

  it('a gate-stopped run is not retried: its own failure is the one report, later ticks exit 0 quietly; a new period starts anew', async () => {
    const before = (await runs()).length;
    // A new period for this test: a tick later than every run so far.
    const tickAt = new Date(Math.ceil(Date.now() / 1000) * 1000 + 1000).toISOString();
    // Past the tick (a run started before it would not cover it), whatever the timer's slack.
    await new Promise((r) => setTimeout(r, Date.parse(tickAt) - Date.now() + 100));
    const period = ['--if-due', '* * * * * *', '--timezone', 'UTC', '--tick-at', tickAt];
    const gated = await runCliInProcess(['--no-pretty', 'run', '--trigger', 'cron', '--model', nanModel, ...period], t.env);
    expect(gated.code).toBe(1);
    expect(gated.stderr).toMatch(/^scorejob: run \d+ failed: rejected 100\.00% of rows/);
    const gatedRun = (await runs()).at(-1);
    expect(gatedRun).toMatchObject({ status: 'failed', error_kind: 'gate' });

    for (let i = 0; i < 2; i++) {
      const quiet = await runCliInProcess(['--no-pretty', 'run', '--trigger', 'cron', '--model', nanModel, ...period], t.env);
      expect(quiet.code).toBe(0);
      expect(quiet.stderr).toBe('');
      expect(quiet.logs.find((l) => l.reason === 'waiting')?.msg).toMatch(
        new RegExp(
          `^not retried: run ${gatedRun?.run_id} for tick \\S+ was stopped by a publish gate and waits for a person: review it .*scorejob publish ${gatedRun?.run_id} --force`,
        ),
      );
    }
    expect((await runs()).length).toBe(before + 1);

    // The next period: a new run, whatever this one's state. Its tick comes after the gated run started
    // (a run started at or after a tick covers it), not a fixed time after tickAt: under load the gated
    // run can start more than a second after its tick.
    const startedAt = gatedRun?.started_at.getTime() ?? Date.now();
    const nextTick = new Date(Math.max(Date.parse(tickAt) + 2000, Math.floor(startedAt / 1000) * 1000 + 1000));
    await new Promise((r) => setTimeout(r, Math.max(0, nextTick.getTime() - Date.now() + 200)));
    const fresh = await runCliInProcess(['--no-pretty', 'run', '--trigger', 'cron', ...period.slice(0, -1), nextTick.toISOString()], t.env);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.logs.find((l) => l.due === true)?.reason).toBe('never-ran');
    expect((await runs()).length).toBe(before + 2);
  }, 120_000);

  it('a gated run nobody announced yet (run by hand for the tick) is said once: one stderr line on the first tick, none after', async () => {
    const tickAt = new Date(Math.ceil(Date.now() / 1000) * 1000 + 1000).toISOString();
    // Past the tick (a run started before it would not cover it), whatever the timer's slack.
    await new Promise((r) => setTimeout(r, Date.parse(tickAt) - Date.now() + 100));
    const manual = await runCliInProcess(['--no-pretty', 'run', '--model', nanModel], t.env);
    expect(manual.code).toBe(1);
    const id = (await runs()).at(-1)?.run_id;
    const period = ['--no-pretty', 'run', '--trigger', 'cron', '--model', nanModel, '--if-due', '* * * * * *', '--timezone', 'UTC', '--tick-at', tickAt];
    const first = await runCliInProcess(period, t.env);
    expect(first.code, JSON.stringify(first.logs.map((l) => l.msg))).toBe(0);
    expect(first.stderr.trim().split('\n')).toHaveLength(1);
    expect(first.stderr, JSON.stringify(first.logs.map((l) => l.msg))).toMatch(
      new RegExp(`^scorejob: run ${id} for tick \\S+ was stopped by a publish gate and waits for a person`),
    );
    const second = await runCliInProcess(period, t.env);
    expect(second.code).toBe(0);
    expect(second.stderr).toBe('');
    expect((await runs()).at(-1)?.run_id).toBe(id);
  }, 120_000);
});
