import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { follow, runCli, startCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdChunk } from '../helpers/holdChunk.js';
import { runInProcess } from '../helpers/run.js';

const started = (l: Record<string, unknown>) => typeof l.run_id === 'string' && /started/.test(String(l.msg));
const output = (r: CliResult) => r.stderr + r.stdout.slice(-3000);
const runIdOf = (r: CliResult) => r.logs.find(started)?.run_id as string;

/** The published table: its count and an md5 of the ordered (customer_id, score). */
async function published(t: TestDatabase): Promise<{ n: number; md5: string }> {
  const { rows } = await t.pool.query<{ n: number; md5: string }>(
    `SELECT count(*)::int AS n, md5(string_agg(customer_id::text || ':' || score::text, ',' ORDER BY customer_id)) AS md5 FROM scoring.customer_scores`,
  );
  return rows[0] as { n: number; md5: string };
}

/** A run's reasons: their count and an md5 of the ordered (customer_id, features, contributions). */
async function reasons(t: TestDatabase, runId: string): Promise<{ n: number; md5: string }> {
  const { rows } = await t.pool.query<{ n: number; md5: string }>(
    `SELECT count(*)::int AS n, md5(string_agg(customer_id::text || ':' || features::text || ':' || contributions::text, ',' ORDER BY customer_id)) AS md5
       FROM scoring.score_reasons WHERE run_id = $1`,
    [runId],
  );
  return rows[0] as { n: number; md5: string };
}

/** How many processes committed the run's chunks. */
async function workersOf(t: TestDatabase, runId: string): Promise<number> {
  const { rows } = await t.pool.query<{ n: number }>(
    `SELECT count(DISTINCT claim_pid)::int AS n FROM scoring.score_chunks WHERE run_id = $1 AND status = 'done'`,
    [runId],
  );
  return rows[0]?.n ?? 0;
}

/** `run --workers 2 …`, held inside chunk 3's commit until its local worker has joined, so that both processes score. */
async function sharedRun(t: TestDatabase, args: string[]): Promise<CliResult> {
  const hold = await holdChunk(t, 3);
  const child = startCli(['run', '--workers', '2', ...args], t.env);
  try {
    await follow(child).until('the local worker joined', (l) => /joined run/.test(String(l.msg)));
  } finally {
    await hold.release();
  }
  return child.result;
}

/** `--workers` with the analysts' options (issue 19): the workers carry the reasons sidecar and read the only-new view, from the run's params. */
describe('a shared run with --reasons or --only-new', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 3000, seed: 11 });
  }, 30_000);
  afterAll(async () => t.drop());

  it('--workers 2 --reasons 3 writes the same reasons as --workers 1 --reasons 3, with both processes scoring', async () => {
    const one = await runInProcess(t, { workers: 1, reasons: 3, chunkSize: 100 });
    const two = await sharedRun(t, ['--reasons', '3', '--chunk-size', '100']);
    expect(two.code, output(two)).toBe(0);
    const [r1, r2] = [one.runId, runIdOf(two)];
    expect(await workersOf(t, r2)).toBe(2);
    const expected = await reasons(t, r1);
    expect(expected.n).toBeGreaterThan(2500);
    expect(await reasons(t, r2)).toEqual(expected);
    // Every scored row of the shared run has its reasons: the worker's chunks wrote theirs too.
    const { rows } = await t.pool.query<{ scored: number }>(`SELECT rows_scored::int AS scored FROM scoring.score_runs WHERE run_id = $1`, [r2]);
    expect(rows[0]?.scored).toBe(expected.n);
  }, 60_000);

  it('--workers 2 --only-new publishes the same table as --only-new, with both processes scoring the new customers', async () => {
    const base = await runInProcess(t, { chunkSize: 500 });
    // 1000 new customers: copies of existing ones under new keys.
    await t.pool.query(
      `INSERT INTO customers SELECT (jsonb_populate_record(NULL::customers, to_jsonb(c) || jsonb_build_object('customer_id', c.customer_id + 50000000))).*
         FROM customers c ORDER BY customer_id DESC LIMIT 1000`,
    );
    await runInProcess(t, { onlyNew: true, chunkSize: 50 });
    const expected = await published(t);
    expect(expected.n).toBeGreaterThan(3500);
    // Back to the base run, so that the shared run has the same base and the same new customers.
    const back = await runCli(['rollback', base.runId], t.env);
    expect(back.code, output(back)).toBe(0);
    expect((await published(t)).md5).not.toBe(expected.md5);
    const shared = await sharedRun(t, ['--only-new', '--chunk-size', '50']);
    expect(shared.code, output(shared)).toBe(0);
    const runId = runIdOf(shared);
    expect(await workersOf(t, runId)).toBe(2);
    const { rows } = await t.pool.query<{ kind: string; scored: number }>(`SELECT kind, rows_scored::int AS scored FROM scoring.score_runs WHERE run_id = $1`, [
      runId,
    ]);
    expect(rows[0]).toEqual({ kind: 'only_new', scored: 1000 });
    expect(await published(t)).toEqual(expected);
    // The closing line says what was carried, in words and as a field.
    const closing = shared.logs.find((l) => l.status === 'succeeded' && l.run_id === runId);
    expect(closing).toMatchObject({ rows_carried: expected.n - 1000 });
    expect(String(closing?.msg)).toMatch(
      new RegExp(`, ${expected.n - 1000} scores carried forward from run ${base.runId}; published to scoring\\.customer_scores$`),
    );
  }, 60_000);
});
