import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy } from '../helpers/run.js';

/**
 * A newcomer's table is not called `customers`: the refusal says how to point the model at it (the
 * manifest's source.table, in the file it names, or `model init`), and following it works.
 */
describe('a missing source table names the step that points the model at your table', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 300, seed: 3 });
    await t.pool.query('COMMENT ON TABLE customers IS NULL');
    await t.pool.query('ALTER TABLE customers RENAME TO clients');
  });
  afterAll(async () => t?.drop());

  it('model inspect and run: exit 2, the hint names the manifest file and model init; editing source.table as told makes inspect pass', async () => {
    const dir = await modelCopy();
    const manifestFile = join(dir, 'manifest.json');
    const inspect = await runCliInProcess(['model', 'inspect', dir], t.env);
    expect(inspect.code).toBe(2);
    const said = inspect.stdout + inspect.stderr;
    expect(said).toMatch(/source table customers does not exist/);
    expect(said).toContain(`set "source": {"table": …} in ${manifestFile}`);
    expect(said).toMatch(/scorejob model init DIR --table YOUR_TABLE/);

    const run = await runCliInProcess(['run', '--model', dir], t.env);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`in ${manifestFile}`);

    const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as { source: { table: string } };
    manifest.source.table = 'clients';
    await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
    const again = await runCliInProcess(['model', 'inspect', dir], t.env);
    expect(again.code, again.stdout + again.stderr).toBe(0);
  }, 60_000);
});
