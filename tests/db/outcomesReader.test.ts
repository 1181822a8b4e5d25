import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig, resolveDb } from '../../src/config.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { seedOutcomes } from '../../src/dev/seedOutcomes.js';
import { syncOutcomes } from '../../src/features/outcomes/syncOutcomes.js';
import { startRun } from '../../src/run/runJob.js';
import { adminUrl, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { day, modelWithOutcomes, publishedAt } from '../helpers/outcomes.js';
import { runOptions, silentLog } from '../helpers/run.js';

/** sql/roles.sql as written (role names made unique): the reader role reads model_performance and nothing more of the outcomes. */
describe('sql/roles.sql: the reader role and model_performance', () => {
  let t: TestDatabase;
  const suffix = randomBytes(4).toString('hex');
  const job = `scorejob_job_${suffix}`;
  const reader = `scorejob_reader_${suffix}`;
  const password = `pw-${suffix}`;
  let reading: pg.Client;
  let runId: string;

  const urlAs = (role: string): string => {
    const u = new URL(t.url);
    u.username = role;
    u.password = password;
    return u.toString();
  };

  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    await seedCustomers(t.pool, { customers: 500, seed: 6 });
    const sql = (await readFile(new URL('../../sql/roles.sql', import.meta.url), 'utf8')).replaceAll('scorejob_job', job).replaceAll('scorejob_reader', reader);
    await t.pool.query(sql);
    await t.pool.query(`ALTER ROLE ${job} PASSWORD '${password}'`);
    await t.pool.query(`CREATE ROLE ${reader}_login LOGIN PASSWORD '${password}' IN ROLE ${reader}`);
    const asJob = new pg.Client({ connectionString: urlAs(job) });
    await asJob.connect();
    await migrate(asJob, 'scoring');
    await asJob.end();
    await t.pool.query(sql); // part 2
    const dir = await modelWithOutcomes();
    const config = resolveConfig({ schema: 'scoring', logLevel: 'silent', pretty: false }, { DATABASE_URL: urlAs(job) }, false);
    runId = (await startRun({ config, log: silentLog, stop: { requested: undefined } }, runOptions({ modelDir: dir, chunkSize: 100 }))).runId;
    // The outcomes are source data: an administrator's table the job may read (docs/outcomes.md).
    await seedOutcomes(t.pool, { schema: 'scoring' });
    await t.pool.query(`GRANT SELECT ON customer_outcomes TO ${job}`);
    const jobPool = createPool(resolveDb({ DATABASE_URL: urlAs(job) }), 2);
    try {
      await syncOutcomes(jobPool, { schema: 'scoring', modelDir: dir, asOf: new Date((await publishedAt(t, runId)).getTime() + 91 * day) });
    } finally {
      await jobPool.end();
    }
    reading = new pg.Client({ connectionString: urlAs(`${reader}_login`) });
    await reading.connect();
  }, 120_000);
  afterAll(async () => {
    await reading?.end();
    await t.drop();
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    for (const r of [`${reader}_login`, reader, job]) await admin.query(`DROP ROLE IF EXISTS ${r}`).catch(() => undefined);
    await admin.end();
  });

  it('reads model_performance: one row per run and band', async () => {
    const { rows } = await reading.query(`SELECT run_id::text, band, coverage, mature FROM scoring.model_performance ORDER BY band NULLS FIRST`);
    expect(rows.length).toBeGreaterThan(1);
    expect(rows[0]).toEqual({ run_id: runId, band: null, coverage: 1, mature: true });
  });

  it('reads nothing more: not the tables behind it, not the outcomes, and cannot write it', async () => {
    for (const table of ['scoring.outcome_syncs', 'scoring.outcome_performance', 'scoring.outcome_estimates', 'customer_outcomes']) {
      await expect(reading.query(`SELECT 1 FROM ${table} LIMIT 1`), table).rejects.toMatchObject({ code: '42501' });
    }
    await expect(reading.query('DELETE FROM scoring.model_performance')).rejects.toMatchObject({ code: expect.stringMatching(/^(42501|55000)$/) });
    await expect(reading.query('UPDATE scoring.outcome_performance SET auc = 1')).rejects.toMatchObject({ code: '42501' });
  });
});
