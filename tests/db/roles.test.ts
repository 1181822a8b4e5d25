import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { adminUrl, createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * sql/roles.sql as written, with role names made unique (roles are cluster-wide and test files run in parallel).
 */
describe('sql/roles.sql: least privilege', () => {
  let t: TestDatabase;
  const suffix = randomBytes(4).toString('hex');
  const job = `scorejob_job_${suffix}`;
  const reader = `scorejob_reader_${suffix}`;
  const password = `pw-${suffix}`;
  let sql: string;

  function urlAs(role: string): string {
    const u = new URL(t.url);
    u.username = role;
    u.password = password;
    return u.toString();
  }

  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    await seedCustomers(t.pool, { customers: 2000, seed: 4 });
    sql = (await readFile(new URL('../../sql/roles.sql', import.meta.url), 'utf8')).replaceAll('scorejob_job', job).replaceAll('scorejob_reader', reader);
    await t.pool.query(sql); // part 1 (part 2 only notices: nothing migrated yet)
    await t.pool.query(`ALTER ROLE ${job} PASSWORD '${password}'`);
    await t.pool.query(`CREATE ROLE ${reader}_login LOGIN PASSWORD '${password}' IN ROLE ${reader}`);
  });
  afterAll(async () => {
    await t.drop();
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    for (const r of [`${reader}_login`, reader, job]) await admin.query(`DROP ROLE IF EXISTS ${r}`).catch(() => undefined);
    await admin.end();
  });

  it('the job role can migrate, run and resume; the reader role can read scores and history only', async () => {
    const env = { DATABASE_URL: urlAs(job) };
    expect((await runCliInProcess(['migrate'], env)).code).toBe(0);
    await t.pool.query(sql); // part 2
    const run = await runCliInProcess(['run', '--chunk-size', '500'], env);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    const readerClient = new pg.Client({ connectionString: urlAs(`${reader}_login`) });
    await readerClient.connect();
    try {
      const scores = await readerClient.query('SELECT count(*)::int n FROM scoring.customer_scores');
      expect(scores.rows[0]).toEqual({ n: 2000 });
      const history = await readerClient.query('SELECT count(*)::int n FROM scoring.customer_score_history');
      expect(history.rows[0]).toEqual({ n: 2000 });
      // What changed against any kept run: the function runs with the job's rights, as the views do.
      const since = await readerClient.query(
        `SELECT count(*)::int n, bool_and(delta = 0) same FROM scoring.customer_score_changes_since((SELECT run_id FROM scoring.published_run))`,
      );
      expect(since.rows[0]).toEqual({ n: 2000, same: true });
      await expect(readerClient.query('SELECT * FROM scoring.score_runs')).rejects.toMatchObject({ code: '42501' });
      await expect(readerClient.query('SELECT * FROM customers')).rejects.toMatchObject({ code: '42501' });
      // The view cannot be written at all (55000: not updatable); the table behind it is not granted.
      await expect(readerClient.query('DELETE FROM scoring.customer_scores')).rejects.toMatchObject({ code: expect.stringMatching(/^(42501|55000)$/) });
      await expect(readerClient.query('DELETE FROM scoring.score_data')).rejects.toMatchObject({ code: '42501' });
      await expect(readerClient.query('UPDATE scoring.published_run SET run_id = NULL')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await readerClient.end();
    }
  });

  it('the reader role cannot retire a model; the job role can, and the reader sees it in published_runs', async () => {
    const retire = ['model', 'retire', 'customer-value', '--confirm', 'customer-value'];
    const refused = await runCliInProcess(retire, { DATABASE_URL: urlAs(`${reader}_login`) });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^scorejob: database \S+: this role has no rights on schema "scoring" \(permission denied for table \w+\)/);
    const readerClient = new pg.Client({ connectionString: urlAs(`${reader}_login`) });
    await readerClient.connect();
    try {
      const rows = async () =>
        (await readerClient.query<{ n: number }>(`SELECT count(*)::int n FROM scoring.customer_scores WHERE model_name = 'customer-value'`)).rows[0]?.n;
      expect(await rows()).toBe(2000);
      // What a retire writes, by hand: neither the pointer nor the publication ledger is the reader's to change.
      await expect(readerClient.query(`DELETE FROM scoring.published_run WHERE model_name = 'customer-value'`)).rejects.toMatchObject({ code: '42501' });
      await expect(
        readerClient.query(`INSERT INTO scoring.score_publications (model_name, run_id, kind) SELECT model_name, run_id, 'retire' FROM scoring.published_run`),
      ).rejects.toMatchObject({ code: '42501' });

      const done = await runCliInProcess(retire, { DATABASE_URL: urlAs(job) });
      expect(done.stderr).toBe('');
      expect(done.code).toBe(0);
      expect(await rows()).toBe(0);
      const last = await readerClient.query(
        `SELECT kind, is_current FROM scoring.published_runs WHERE model_name = 'customer-value' ORDER BY publication_id DESC LIMIT 1`,
      );
      expect(last.rows).toEqual([{ kind: 'retire', is_current: false }]);
    } finally {
      await readerClient.end();
    }
  });

  it('the job role cannot write to the source', async () => {
    const c = new pg.Client({ connectionString: urlAs(job) });
    await c.connect();
    try {
      await expect(c.query('DELETE FROM customers')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await c.end();
    }
  });
});
