import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import type { FeatureBaseline } from '../../src/features/feature-drift/baseline.js';
import { featurePsi, numericBin, type FeatureDistribution } from '../../src/stats/featurePsi.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy } from '../helpers/run.js';

/**
 * `scorejob model baseline DIR --table T [--where SQL]` against real PostgreSQL: DIR/baseline.json holds
 * each manifest feature's distribution as the table has it (checked against plain SQL), the model's
 * sha256 is unchanged, and a mistyped table or filter is refused naming it.
 */
describe('scorejob model baseline', () => {
  let t: TestDatabase;
  let dir: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 4000, seed: 9 });
    dir = await modelCopy();
  }, 60_000);
  afterAll(async () => t.drop());

  const read = async (): Promise<FeatureBaseline> => JSON.parse(await readFile(join(dir, 'baseline.json'), 'utf8')) as FeatureBaseline;
  const feature = (b: FeatureBaseline, column: string): FeatureDistribution => b.features.find((f) => f.column === column)!;

  it("writes every manifest feature: numbers in decile bins, categories by name, NULL apart; the shares are the table's", async () => {
    const before = await runCliInProcess(['model', 'inspect', dir, '--no-db', '--backend', 'cpu'], t.env);
    const r = await runCliInProcess(['model', 'baseline', dir, '--table', 'customers'], t.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^wrote \S+baseline\.json: 15 features from 4000 rows of customers on /);
    const b = await read();
    expect(b.rows).toBe(4000);
    expect(b.features.map((f) => f.column)).toEqual(
      JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')).features.map((f: { column: string }) => f.column),
    );
    for (const f of b.features) expect(f.shares.reduce((s, x) => s + x, 0) + f.nullShare).toBeCloseTo(1, 9);

    // Against plain SQL: the tenure bins and the segment shares.
    const tenure = feature(b, 'tenure_months');
    if (tenure.kind !== 'numeric') throw new Error('tenure_months is numeric');
    expect(tenure.edges).toEqual([...tenure.edges].sort((x, y) => x - y));
    const values = (await t.pool.query<{ v: number | null }>('SELECT tenure_months::float8 AS v FROM customers')).rows.map((r) => r.v);
    const counts = new Array(tenure.edges.length + 2).fill(0);
    for (const v of values) counts[v === null ? tenure.edges.length + 1 : numericBin(v, tenure.edges)]++;
    expect(featurePsi(tenure, counts)).toBeCloseTo(0, 10);
    expect(counts.slice(0, -1).map((n) => n / 4000)).toEqual(tenure.shares);
    const segment = feature(b, 'segment');
    const { rows } = await t.pool.query<{ segment: string | null; n: string }>('SELECT segment, count(*) AS n FROM customers GROUP BY segment');
    if (segment.kind !== 'categorical') throw new Error('segment is categorical');
    for (const row of rows.filter((x) => x.segment !== null)) expect(segment.shares[segment.categories.indexOf(row.segment!)]).toBe(Number(row.n) / 4000);

    // baseline.json is not a model file: the model's fingerprint, and so a run's resume, are unchanged.
    const after = await runCliInProcess(['model', 'inspect', dir, '--no-db', '--backend', 'cpu'], t.env);
    const sha = (s: string) => s.match(/sha256[^0-9a-f]*([0-9a-f]{64})/)?.[1];
    expect(sha(after.stdout)).toBeDefined();
    expect(sha(after.stdout)).toBe(sha(before.stdout));
  }, 90_000);

  it('--where keeps only the training rows', async () => {
    const r = await runCliInProcess(['model', 'baseline', dir, '--table', 'customers', '--where', "segment = 'smb'"], t.env);
    expect(r.code, r.stderr).toBe(0);
    const b = await read();
    const smb = Number((await t.pool.query("SELECT count(*) FROM customers WHERE segment = 'smb'")).rows[0]?.count);
    expect(b).toMatchObject({ rows: smb, where: "segment = 'smb'" });
    const segment = feature(b, 'segment');
    expect(segment.shares[(segment as { categories: string[] }).categories.indexOf('smb')]).toBe(1);
  }, 60_000);

  it('a table or filter that does not work is refused (exit 2) naming it and the database', async () => {
    const missing = await runCliInProcess(['model', 'baseline', dir, '--table', 'customerz'], t.env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`--table customerz on ${t.db.user}@${t.db.host}:${t.db.port}/${t.db.database}: relation "customerz" does not exist`);
    const none = await runCliInProcess(['model', 'baseline', dir, '--table', 'customers', '--where', 'false'], t.env);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('has no rows on');
  }, 60_000);
});
