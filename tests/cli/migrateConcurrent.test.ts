import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMigrations } from '../../src/db/migrate.js';
import { startCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * Several pods' `scorejob migrate` (an init container in each pod of deploy/kubernetes/cronjob.yaml) at
 * the same moment against a fresh database: all exit 0, each migration is applied once, by one of them.
 */
describe('scorejob migrate run by several processes at once', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
  });
  afterAll(async () => t.drop());

  it('5 processes at once on a fresh database: all exit 0, the schema is applied once', async () => {
    const children = Array.from({ length: 5 }, () => startCli(['--no-pretty', 'migrate'], t.env));
    const results = await Promise.all(children.map((c) => c.result));
    expect(
      results.map((r) => r.code),
      results.map((r) => r.stderr).join('\n'),
    ).toEqual([0, 0, 0, 0, 0]);
    const files = await readMigrations();
    const { rows } = await t.pool.query<{ version: number; n: number }>(
      'SELECT version, count(*)::int AS n FROM scoring.schema_migrations GROUP BY version ORDER BY version',
    );
    expect(rows).toEqual(files.map((f) => ({ version: f.version, n: 1 })));
    // One process applied them all; the others waited for its lock and found the schema up to date.
    const applied = results.map((r) => r.logs.filter((l) => l.outcome === 'applied').length);
    expect(applied.filter((n) => n === files.length)).toHaveLength(1);
    expect(applied.filter((n) => n === 0)).toHaveLength(4);
    expect(results.filter((r) => r.logs.some((l) => /is up to date$/.test(String(l.msg))))).toHaveLength(4);
  }, 120_000);
});
