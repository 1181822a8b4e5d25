import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runStatus } from '../helpers/hold.js';
import { publishedSnapshot } from '../helpers/state.js';

/**
 * `--chunk-attempts` counts a chunk's attempts whatever stage failed, its commit included: a chunk whose
 * done mark keeps failing with a transient error (40001, from a trigger: a failure of the database, not a
 * mock) fails the run after that many attempts, resumably.
 */
describe('--chunk-attempts at commit', () => {
  let t: TestDatabase;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 1000, seed: 23 });
  });
  afterAll(async () => t?.drop());

  it('a chunk whose commit always fails with 40001 fails the run after --chunk-attempts attempts; fixed, resume finishes it', async () => {
    await t.pool.query(`
      CREATE FUNCTION public.sj_test_refuse_chunk3() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.chunk_no = 3 AND NEW.status = 'done' AND OLD.status <> 'done' THEN
          RAISE EXCEPTION 'test: chunk 3 refused' USING ERRCODE = '40001';
        END IF;
        RETURN NEW;
      END $$`);
    await t.pool.query(
      `CREATE TRIGGER sj_test_refuse_chunk3 BEFORE UPDATE ON scoring.score_chunks FOR EACH ROW EXECUTE FUNCTION public.sj_test_refuse_chunk3()`,
    );
    const started = Date.now();
    const r = await runCli(['run', '--chunk-size', '100', '--chunk-attempts', '2'], t.env);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(r.code).toBe(1);
    const runId = r.logs.find((l) => /started/.test(String(l.msg)))?.run_id as string;
    const chunk = await t.pool.query<{ attempts: number; status: string }>(
      'SELECT attempts, status FROM scoring.score_chunks WHERE run_id = $1 AND chunk_no = 3',
      [runId],
    );
    expect(chunk.rows[0]).toEqual({ attempts: 2, status: 'pending' });
    expect(await runStatus(t, runId)).toMatchObject({ status: 'failed', error_kind: 'database' });
    expect(r.stderr).toMatch(new RegExp(`resume it with \`scorejob resume ${runId}\``));

    await t.pool.query('DROP TRIGGER sj_test_refuse_chunk3 ON scoring.score_chunks');
    const resumed = await runCli(['resume', runId], t.env);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    const published = await publishedSnapshot(t);
    expect(published.runs).toEqual([runId]);
    expect(published.scores.size).toBe(1000);
  });
});
