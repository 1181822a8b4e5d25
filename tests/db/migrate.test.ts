import { cp, mkdtemp, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, sqlDir } from '../../src/db/migrate.js';
import { runCli } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

describe('scorejob migrate', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
  });
  afterAll(async () => t.drop());

  it('creates every object of the schema on an empty database', async () => {
    const r = await runCliInProcess(['migrate'], t.env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { rows } = await t.pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'scoring' AND c.relkind IN ('r', 'p', 'v') ORDER BY 1`,
    );
    expect(rows.map((r) => r.name)).toEqual(
      expect.arrayContaining([
        'customer_score_history',
        'customer_scores',
        'published_run',
        'schema_migrations',
        'score_chunks',
        'score_data',
        'score_rejects',
        'score_runs',
      ]),
    );
    const applied = await t.pool.query('SELECT version, name, checksum FROM scoring.schema_migrations');
    expect(applied.rows.length).toBeGreaterThan(0);
    expect(r.logs.some((l) => l.migration === '001_init.sql' && l.outcome === 'applied')).toBe(true);
  });

  it('changes nothing when run again', async () => {
    const before = await t.pool.query('SELECT version, applied_at FROM scoring.schema_migrations ORDER BY version');
    const r = await runCliInProcess(['migrate'], t.env);
    expect(r.code).toBe(0);
    expect(r.logs.every((l) => l.outcome === undefined || l.outcome === 'unchanged')).toBe(true);
    const after = await t.pool.query('SELECT version, applied_at FROM scoring.schema_migrations ORDER BY version');
    expect(after.rows).toEqual(before.rows);
  });

  it('refuses (exit 2) when an applied file was edited', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sj-sql-'));
    await cp(sqlDir, dir, { recursive: true });
    const first = join(dir, '001_init.sql');
    await writeFile(first, (await readFile(first, 'utf8')) + '\n-- edited\n');
    const client = await t.pool.connect();
    try {
      await expect(migrate(client, 'scoring', pathToFileURL(dir + '/'))).rejects.toMatchObject({
        exitCode: 2,
        message: expect.stringContaining('001_init.sql was edited after it was applied'),
      });
    } finally {
      client.release();
    }
  });

  it('a migration missing below the latest applied one (two branches released together) is named, and migrate applies it', async () => {
    const other = await createTestDatabase();
    try {
      // Undo 009 as if the schema had been migrated by a build that had 010 but not 009.
      await other.pool.query(`ALTER TABLE scoring.score_chunks DROP COLUMN claim_token, DROP COLUMN claim_host, DROP COLUMN claim_pid,
                                DROP COLUMN claimed_at, DROP COLUMN lease_until, DROP COLUMN failed`);
      await other.pool.query(`DROP INDEX scoring.score_chunks_pending_idx`);
      await other.pool.query(`DELETE FROM scoring.schema_migrations WHERE version = 9`);
      const refused = await runCliInProcess(['runs'], other.env);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/schema "scoring" lacks migration 009_chunk_claims\.sql: run `scorejob migrate`/);
      const r = await runCliInProcess(['migrate'], other.env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.logs.some((l) => l.migration === '009_chunk_claims.sql' && l.outcome === 'applied')).toBe(true);
      expect((await runCliInProcess(['runs'], other.env)).code).toBe(0);
    } finally {
      await other.drop();
    }
  });

  it('refuses a schema migrated by a newer scorejob', async () => {
    const other = await createTestDatabase();
    try {
      await other.pool.query(`INSERT INTO scoring.schema_migrations (version, name, checksum) VALUES (999, '999_future.sql', 'x')`);
      const r = await runCliInProcess(['migrate'], other.env);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/newer scorejob/);
      const run = await runCliInProcess(['runs'], other.env);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/newer than this scorejob/);
    } finally {
      await other.drop();
    }
  });

  it('two migrates at once both succeed and create one set of tables', async () => {
    const fresh = await createTestDatabase({ migrated: false });
    try {
      const [a, b] = await Promise.all([runCli(['migrate'], fresh.env), runCli(['migrate'], fresh.env)]);
      expect([a.code, b.code]).toEqual([0, 0]);
      const { rows } = await fresh.pool.query<{ n: string }>('SELECT count(*) AS n FROM scoring.schema_migrations');
      const files = await runCliInProcess(['migrate'], fresh.env);
      expect(files.code).toBe(0);
      expect(Number(rows[0]?.n)).toBeGreaterThan(0);
      const applied = [...a.logs, ...b.logs].filter((l) => l.outcome === 'applied');
      expect(applied.length).toBe(Number(rows[0]?.n));
    } finally {
      await fresh.drop();
    }
  });
});

describe('an un-migrated database', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
  });
  afterAll(async () => t.drop());

  it('is refused with exit 2 and told to run scorejob migrate', async () => {
    const r = await runCliInProcess(['runs'], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('run `scorejob migrate`');
  });
});
