import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTwoInputModel } from '../../scripts/fixtures/byoModels.js';
import { selectBackend } from '../../src/model/backend.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runStatus } from '../helpers/hold.js';
import { modelCopy } from '../helpers/run.js';

const customers = 3000;
const runIdOf = (r: CliResult) => r.logs.find((l) => /started/.test(String(l.msg)))?.run_id as string;

/**
 * README "What can go wrong": a failed run's advice is what works for its failure, and following it
 * succeeds. A model error fails the same way on every resume: fix, then a new run. A bad value in the
 * source (a view's cast) names the chunk's key range to fix, then resume.
 */
describe('advice that works', () => {
  let t: TestDatabase;
  let root: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers, seed: 29 });
    root = await mkdtemp(join(tmpdir(), 'sj-advice-'));
    await selectBackend('cpu'); // the fixture model is built with TF.js
  });
  afterAll(async () => t?.drop());

  it('an id outside an Embedding (a model error) advises a new run once fixed, not resume; the fixed model\'s new run succeeds', async () => {
    const dir = join(root, 'embedding');
    await writeTwoInputModel(dir);
    const file = join(dir, 'manifest.json');
    const good = await readFile(file, 'utf8');
    const manifest = JSON.parse(good) as { features: { column: string; transform: string; input?: string }[] };
    // orders_12m's raw values (up to hundreds) as the region id of an Embedding of 6 ids: the backend refuses the batch.
    manifest.features = manifest.features.map((f) => (f.column === 'region' ? { column: 'orders_12m', transform: 'raw', input: 'region_id' } : f));
    await writeFile(file, JSON.stringify(manifest));

    const r = await runCli(['run', '--model', dir, '--backend', 'cpu', '--chunk-size', '500'], t.env);
    const runId = runIdOf(r);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^scorejob: run ${runId} failed: the model failed on chunk \\d+'s input: .*GatherV2.*; fix the model or the data it is fed .*then start a new run with \`scorejob run\``));
    expect(r.stderr).not.toMatch(/scorejob resume/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(await runStatus(t, runId)).toMatchObject({ status: 'failed', error_kind: 'model' });

    // Following the advice: the manifest fixed, a new run.
    await writeFile(file, good);
    const fixed = await runCli(['run', '--model', dir, '--backend', 'cpu', '--chunk-size', '500'], t.env);
    expect(fixed.stderr).toBe('');
    expect(fixed.code).toBe(0);
  });

  it('a bad value through a view\'s cast names the chunk\'s key range to fix, then resume; following it succeeds', async () => {
    await t.pool.query(`CREATE TABLE customers_text AS SELECT * FROM customers`);
    await t.pool.query(`ALTER TABLE customers_text ALTER COLUMN tenure_months TYPE text`);
    const cols = (await t.pool.query<{ c: string }>(`SELECT column_name c FROM information_schema.columns WHERE table_name = 'customers_text' ORDER BY ordinal_position`)).rows.map((x) => x.c);
    await t.pool.query(`CREATE VIEW customers_cast AS SELECT ${cols.map((c) => (c === 'tenure_months' ? 'tenure_months::integer AS tenure_months' : c)).join(', ')} FROM customers_text`);
    const bad = 1700n;
    await t.pool.query(`UPDATE customers_text SET tenure_months = 'twelve' WHERE customer_id = $1`, [bad]);
    const dir = await modelCopy((m) => (m.source = { table: 'customers_cast', key: 'customer_id' }));

    const r = await runCli(['run', '--model', dir, '--chunk-size', '500'], t.env);
    const runId = runIdOf(r);
    expect(r.code).toBe(1);
    const chunk = (await t.pool.query<{ chunk_no: number; lo: string; hi: string }>('SELECT chunk_no, key_lo::text lo, key_hi::text hi FROM scoring.score_chunks WHERE run_id = $1 AND key_lo < $2 AND key_hi >= $2', [runId, bad])).rows[0]!;
    const error = 'invalid input syntax for type integer: "twelve"';
    expect(r.stderr.trim()).toBe(`scorejob: run ${runId} failed: ${error} (during chunk ${chunk.chunk_no}); fix the source rows in customer_id (${chunk.lo}, ${chunk.hi}] (${error}), then \`scorejob resume ${runId}\``);
    expect(await runStatus(t, runId)).toMatchObject({ status: 'failed', error_kind: 'data' });

    // Following the advice: the row fixed, the run resumed.
    await t.pool.query(`UPDATE customers_text SET tenure_months = '12' WHERE customer_id = $1`, [bad]);
    const resumed = await runCli(['resume', runId], t.env);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    const published = await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.customer_scores WHERE run_id = $1', [runId]);
    expect(published.rows[0]!.n).toBe(customers);
  });
});
