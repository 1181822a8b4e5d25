import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTwoInputModel } from '../../scripts/fixtures/byoModels.js';
import { writeKeras3FunctionalModel } from '../../scripts/fixtures/keras3Models.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { selectBackend } from '../../src/model/backend.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { shippedModelDir } from '../helpers/run.js';
import { expectRefusedUnchanged, ledgerState } from '../helpers/state.js';

/** README "Bringing your own model": `scorejob model init` drafts a manifest from the data that `model inspect` and a run accept. */
describe('scorejob model init', () => {
  let t: TestDatabase;
  let root: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 3000, seed: 5 });
    root = await mkdtemp(join(tmpdir(), 'sj-init-'));
  });
  afterAll(async () => t.drop());

  /** A model directory with the shipped model's files and no manifest. */
  async function bareShippedModel(name: string): Promise<string> {
    const dir = join(root, name);
    await mkdir(dir);
    for (const f of ['model.json', 'weights.bin']) await copyFile(join(shippedModelDir, f), join(dir, f));
    return dir;
  }

  const escapeRegExp = (s: string) => s.replace(/[.*+?^$()|[\]\\{}]/g, '\\$&');

  /** What the draft asks of its reviewer, done: the draft mark deleted. */
  async function markReviewed(dir: string): Promise<void> {
    const file = join(dir, 'manifest.json');
    const manifest = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    delete manifest.draft;
    await writeFile(file, JSON.stringify(manifest, null, 2));
  }

  it('drafts the statistics PostgreSQL computes (avg, stddev_pop, min, max), fills where NULLs exist, and a run with the reviewed draft succeeds', async () => {
    const dir = await bareShippedModel('shipped');
    const init = await runCliInProcess(['model', 'init', dir, '--table', 'customers'], t.env);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/^wrote .*manifest\.json: 15 features from 3000 rows of customers/);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as {
      description: string;
      source: unknown;
      features: Record<string, any>[];
      training: Record<string, any>;
    };
    expect(manifest.description).toMatch(/DRAFT .* a person must review it .*delete "draft": true/);
    expect(manifest).toHaveProperty('draft', true);
    expect(manifest.source).toEqual({ table: 'customers', key: 'customer_id' });
    for (const f of manifest.features.filter((x) => x.transform === 'standardize')) {
      const c = `"${f.column}"`;
      const { rows } = await t.pool.query(
        `SELECT avg(${c})::float8 AS mean, stddev_pop(${c})::float8 AS std, min(${c})::float8 AS min, max(${c})::float8 AS max, count(*) - count(${c}) AS nulls FROM customers`,
      );
      const sql = rows[0];
      expect({ mean: f.mean, std: f.std, min: f.min, max: f.max }, f.column).toEqual({ mean: sql.mean, std: sql.std, min: sql.min, max: sql.max });
      expect(f.fill, f.column).toBe(Number(sql.nulls) > 0 ? sql.mean : undefined);
      expect(manifest.training.columns[f.column].null_fraction).toBe(Number(sql.nulls) / 3000);
    }
    const region = manifest.features.find((f) => f.column === 'region')!;
    const { rows: top } = await t.pool.query<{ region: string }>('SELECT region FROM customers WHERE region IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1');
    expect(region).toEqual({ column: 'region', transform: 'one_hot', categories: top.map((r) => r.region), fill: top[0]!.region });
    for (const column of ['segment', 'region']) {
      expect(init.stdout).toContain(
        `  review: ${column}: categories ordered by frequency in this table (most frequent first), not by training: each category's one_hot position must be the one the model was trained with; reorder categories to match\n`,
      );
    }
    expect(manifest.features.find((f) => f.column === 'has_app')).toHaveProperty('fill');
    expect(manifest.features.find((f) => f.column === 'is_subscriber')).not.toHaveProperty('fill');

    const inspect = await runCliInProcess(['model', 'inspect', dir], t.env);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toMatch(/the source has every column the model needs/);
    await markReviewed(dir);
    const run = await runCliInProcess(['run', '--model', dir], t.env);
    expect(run.code).toBe(0);
    const { rows: scored } = await t.pool.query<{ n: number }>("SELECT count(*)::int n FROM scoring.customer_scores WHERE model_name = 'shipped'");
    expect(scored[0]!.n).toBe(3000);
  });

  it('never overwrites a manifest.json without --force (exit 2, one line, before reading the table)', async () => {
    const dir = await bareShippedModel('twice');
    expect((await runCliInProcess(['model', 'init', dir, '--table', 'customers'], t.env)).code).toBe(0);
    const first = await readFile(join(dir, 'manifest.json'), 'utf8');
    const again = await runCliInProcess(['model', 'init', dir, '--table', 'customers', '--columns', 'tenure_months'], {
      DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
    });
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`scorejob: ${join(dir, 'manifest.json')} exists; scorejob model init does not overwrite it (pass --force to replace it)\n`);
    expect(await readFile(join(dir, 'manifest.json'), 'utf8')).toBe(first);
    expect((await runCliInProcess(['model', 'init', dir, '--table', 'customers', '--force'], t.env)).code).toBe(0);
  });

  it('drafts around values beyond float32 (float8 ±1e300, numeric 1e400): statistics from the rest, a review line per column naming them', async () => {
    await t.pool.query(`CREATE TABLE huge (id bigint PRIMARY KEY, f float8, n numeric, plain float8)`);
    await t.pool.query(`INSERT INTO huge SELECT i, i, i * 2, i FROM generate_series(1, 20) i`);
    await t.pool.query(`INSERT INTO huge VALUES (21, 1e300, 1e400, 1), (22, -1e300, 5, 2), (23, 'NaN', 'Infinity', 3)`);
    const dir = await bareShippedModel('huge');
    const init = await runCliInProcess(['model', 'init', dir, '--table', 'huge', '--columns', 'f,n,plain', '--force'], t.env);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    expect(init.stdout).toContain(
      '  review: f: 2 values beyond float32 (|value| > 3.4e38) left out of the statistics; the model cannot take them: a run rejects such rows (non_finite)\n',
    );
    expect(init.stdout).toContain(
      '  review: n: 1 value beyond float32 (|value| > 3.4e38) left out of the statistics; the model cannot take them: a run rejects such rows (non_finite)\n',
    );
    expect(init.stdout).toContain('  review: f: 1 NaN or infinite values (such rows are rejected)\n');
    expect(init.stdout.split('\n').every((line) => line.length < 300)).toBe(true);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { features: Record<string, any>[]; training: Record<string, any> };
    const stats = async (c: string) =>
      (
        await t.pool.query(
          `SELECT avg(${c})::float8 AS mean, stddev_pop(${c})::float8 AS std, min(${c})::float8 AS min, max(${c})::float8 AS max FROM huge WHERE abs(${c}) < 1e30`,
        )
      ).rows[0];
    const [f, n] = manifest.features;
    expect({ mean: f!.mean, std: f!.std, min: f!.min, max: f!.max }).toEqual(await stats('f'));
    expect({ mean: n!.mean, std: n!.std, min: n!.min, max: n!.max }).toEqual(await stats('n'));
    expect(manifest.training.columns.f.beyond_float32).toBe(2);
  });

  it("maps text columns to a model's int32 inputs as index features (by name), numbers raw with --numbers raw", async () => {
    await selectBackend('cpu');
    const dir = join(root, 'two-inputs');
    await writeTwoInputModel(dir);
    await rm(join(dir, 'manifest.json'));
    const columns = 'tenure_months,discount_share,email_open_rate,days_since_last_order,region,segment';
    const init = await runCliInProcess(['model', 'init', dir, '--table', 'customers', '--columns', columns, '--numbers', 'raw'], t.env);
    expect(init.code).toBe(0);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { features: Record<string, any>[] };
    expect(manifest.features.map((f) => [f.column, f.transform, f.input])).toEqual([
      ['tenure_months', 'raw', 'numeric'],
      ['discount_share', 'raw', 'numeric'],
      ['email_open_rate', 'raw', 'numeric'],
      ['days_since_last_order', 'raw', 'numeric'],
      ['segment', 'index', 'segment_id'],
      ['region', 'index', 'region_id'],
    ]);
    expect(manifest.features[5]!.fill).toBe(manifest.features[5]!.categories.length); // NULL -> the unknown id
    expect(init.stdout).toContain(
      "  review: region: categories ordered by frequency in this table (most frequent first), not by training: each category's id must be the one the model was trained with; reorder categories to match\n",
    );
    await markReviewed(dir);
    expect((await runCliInProcess(['run', '--model', dir], t.env)).code).toBe(0);
  });

  it('reads the inputs of a Keras 3 export (batch_shape, DTypePolicy) and drafts a manifest a run accepts', async () => {
    const dir = join(root, 'keras3');
    await writeKeras3FunctionalModel(dir);
    await rm(join(dir, 'manifest.json'));
    const columns = 'tenure_months,discount_share,email_open_rate,days_since_last_order,region,segment';
    const init = await runCliInProcess(['model', 'init', dir, '--table', 'customers', '--columns', columns, '--numbers', 'raw'], t.env);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { features: Record<string, any>[] };
    expect(manifest.features.map((f) => [f.column, f.transform, f.input])).toEqual([
      ['tenure_months', 'raw', 'numeric'],
      ['discount_share', 'raw', 'numeric'],
      ['email_open_rate', 'raw', 'numeric'],
      ['days_since_last_order', 'raw', 'numeric'],
      ['segment', 'index', 'segment_id'],
      ['region', 'index', 'region_id'],
    ]);
    await markReviewed(dir);
    expect((await runCliInProcess(['run', '--model', dir], t.env)).code).toBe(0);
  });

  it('a draft publishes nothing: run refuses it (exit 2, one line, before anything is written), as --model and as --challenger; inspect says it is a draft; --dry-run tries it; deleting the mark as the refusal says lets the run publish', async () => {
    const dir = await bareShippedModel('unreviewed');
    const init = await runCliInProcess(['model', 'init', dir, '--table', 'customers'], t.env);
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/marked "draft": true; review it .*then delete "draft": true: scorejob run refuses a draft/);
    const inspect = await runCliInProcess(['model', 'inspect', dir], t.env);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toMatch(/\ndraft +yes: nobody has reviewed this manifest; scorejob run refuses it/);

    const file = join(dir, 'manifest.json');
    const advice = /is a draft \("draft": true, written by scorejob model init\) that nobody has reviewed: .*then delete "draft": true from it/;
    const before = await ledgerState(t);
    const refused = await runCliInProcess(['run', '--model', dir], t.env);
    await expectRefusedUnchanged(t, before, refused, new RegExp(`^scorejob: ${escapeRegExp(file)} ${advice.source}`));
    await expectRefusedUnchanged(
      t,
      before,
      await runCliInProcess(['run', '--model', shippedModelDir, '--challenger', dir], t.env),
      new RegExp(`^scorejob: --challenger: .*manifest\\.json ${advice.source}`),
    );
    await expectRefusedUnchanged(t, before, await runCliInProcess(['run', '--model', dir, '--trigger', 'cron', '--if-due', '* * * * *'], t.env), advice);

    const dry = await runCliInProcess(['run', '--model', dir, '--dry-run'], t.env);
    expect(dry.code).toBe(0);
    expect((await ledgerState(t)).publishedRun).toBe(before.publishedRun);

    // The advice, followed: the mark deleted, the run publishes.
    await markReviewed(dir);
    expect((await runCliInProcess(['model', 'inspect', dir], t.env)).stdout).not.toMatch(/\ndraft /);
    expect((await runCliInProcess(['run', '--model', dir], t.env)).code).toBe(0);
    const { rows } = await t.pool.query<{ n: number }>("SELECT count(*)::int n FROM scoring.customer_scores WHERE model_name = 'unreviewed'");
    expect(rows[0]!.n).toBe(3000);
  });
});
