import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { migrate } from '../../src/db/migrate.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { rollback } from '../../src/publish/rollback.js';
import { startRun } from '../../src/run/runJob.js';
import { adminUrl, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runOptions, silentLog } from '../helpers/run.js';
import { waitUntil } from '../helpers/waitUntil.js';

/**
 * Issue 15, with sql/roles.sql as written (role names made unique): the reader role reads the new views
 * (changes, published runs, rejects) and hears the publish event, and still nothing else.
 */
describe('sql/roles.sql: the reader role and the downstream views', () => {
  let t: TestDatabase;
  const suffix = randomBytes(4).toString('hex');
  const job = `scorejob_job_${suffix}`;
  const reader = `scorejob_reader_${suffix}`;
  const password = `pw-${suffix}`;
  let reading: pg.Client;

  const urlAs = (role: string): string => {
    const u = new URL(t.url);
    u.username = role;
    u.password = password;
    return u.toString();
  };
  const jobCtx = () => ({
    config: resolveConfig({ schema: 'scoring', logLevel: 'silent', pretty: false }, { DATABASE_URL: urlAs(job) }, false),
    log: silentLog,
  });

  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    await seedCustomers(t.pool, { customers: 300, seed: 6 });
    const sql = (await readFile(new URL('../../sql/roles.sql', import.meta.url), 'utf8')).replaceAll('scorejob_job', job).replaceAll('scorejob_reader', reader);
    await t.pool.query(sql);
    await t.pool.query(`ALTER ROLE ${job} PASSWORD '${password}'`);
    await t.pool.query(`CREATE ROLE ${reader}_login LOGIN PASSWORD '${password}' IN ROLE ${reader}`);
    const asJob = new pg.Client({ connectionString: urlAs(job) });
    await asJob.connect();
    await migrate(asJob, 'scoring');
    await asJob.end();
    await t.pool.query(sql); // part 2
    for (let i = 0; i < 2; i++) await startRun({ ...jobCtx(), stop: { requested: undefined } }, runOptions({ chunkSize: 100 }));
    reading = new pg.Client({ connectionString: urlAs(`${reader}_login`) });
    await reading.connect();
  });
  afterAll(async () => {
    await reading?.end();
    await t.drop();
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    for (const r of [`${reader}_login`, reader, job]) await admin.query(`DROP ROLE IF EXISTS ${r}`).catch(() => undefined);
    await admin.end();
  });

  it('reads the published runs, the changes and the rejects, and hears the publish event', async () => {
    const runs = await reading.query('SELECT run_id::text, previous_run_id::text, is_current FROM scoring.published_runs ORDER BY publication_id');
    expect(runs.rows).toEqual([
      { run_id: '1', previous_run_id: null, is_current: false },
      { run_id: '2', previous_run_id: '1', is_current: true },
    ]);
    const changes = await reading.query('SELECT count(*)::int AS n, count(previous_score)::int AS p FROM scoring.customer_score_changes');
    expect(changes.rows[0]).toEqual({ n: 300, p: 300 });
    expect((await reading.query('SELECT count(*)::int AS n FROM scoring.customer_score_rejects')).rows[0]).toEqual({ n: 0 });
    expect((await reading.query('SELECT count(percentile)::int AS n FROM scoring.customer_scores')).rows[0]).toEqual({ n: 300 });

    const heard: string[] = [];
    reading.on('notification', (n) => heard.push((JSON.parse(n.payload ?? '{}') as { run_id: string }).run_id));
    await reading.query('LISTEN scorejob_published');
    await rollback(jobCtx(), {});
    await waitUntil('the reader heard the rollback', async () => heard.length === 1, 5000);
    expect(heard).toEqual(['1']);
    expect((await reading.query('SELECT DISTINCT run_id::text AS r FROM scoring.customer_scores')).rows).toEqual([{ r: '1' }]);
  });

  it('reads the segment_drift view, and not the segment tables behind it', async () => {
    expect((await reading.query('SELECT count(*)::int AS n FROM scoring.segment_drift')).rows[0]).toEqual({ n: 0 });
    for (const table of ['run_segments', 'chunk_segment_counts']) {
      await expect(reading.query(`SELECT 1 FROM scoring.${table} LIMIT 1`), table).rejects.toMatchObject({ code: '42501' });
    }
  });

  it('reads nothing more: not the ledger, the scores tables, the source, or the view function', async () => {
    for (const table of ['score_runs', 'score_publications', 'score_rejects', 'score_data', 'score_chunks', 'run_locks', 'models']) {
      await expect(reading.query(`SELECT 1 FROM scoring.${table} LIMIT 1`), table).rejects.toMatchObject({ code: '42501' });
    }
    await expect(reading.query('SELECT 1 FROM customers LIMIT 1')).rejects.toMatchObject({ code: '42501' });
    await expect(reading.query('SELECT scoring.refresh_score_views()')).rejects.toMatchObject({ code: '42501' });
    await expect(reading.query('DELETE FROM scoring.published_runs')).rejects.toMatchObject({ code: expect.stringMatching(/^(42501|55000)$/) });
  });
});
