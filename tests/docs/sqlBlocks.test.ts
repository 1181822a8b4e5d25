import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { blocksOf, docPages } from '../helpers/docBlocks.js';

/**
 * Every SQL block of README.md and docs/*.md runs as written against a schema with two published runs
 * (with reasons), as a downstream engineer would paste it into psql. A block that cannot run here says why
 * right above it (`<!-- not run in tests: … -->`).
 */
const blocks = docPages()
  .flatMap((f) => blocksOf(f))
  .filter((b) => b.lang === 'sql');
const runnable = blocks.filter((b) => b.notRun === undefined);

describe('the SQL blocks of the docs', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 2000, seed: 5 });
    for (let i = 0; i < 2; i++) expect((await runCli(['run', '--reasons', '3', '--chunk-size', '500'], t.env)).code).toBe(0);
  }, 120_000);
  afterAll(async () => t?.drop());

  it('are found (README, downstream, analysts, outcomes)', () => {
    expect(runnable.length).toBeGreaterThanOrEqual(4);
    expect(new Set(runnable.map((b) => b.file))).toEqual(new Set(['README.md', 'docs/analysts.md', 'docs/downstream.md', 'docs/outcomes.md']));
  });

  for (const b of runnable) {
    it(`${b.file}:${b.line} runs as written`, async () => {
      await expect(t.pool.query(b.code), `${b.file}:${b.line}\n${b.code}`).resolves.toBeDefined();
    });
  }
});
