import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { repoRoot } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * The README quick start's "Score and publish" block, run as written by a newcomer: `scorejob` on PATH (what
 * `npm link` does: a `scorejob` that is this repo's bin/scorejob), a shell in some other folder, a
 * database with the newcomer's own customers table (not made by seed) and nothing else. Only the
 * DATABASE_URL's value is the test's.
 */
async function readmeBlock(): Promise<string[]> {
  const readme = await readFile(join(repoRoot, 'README.md'), 'utf8');
  const at = readme.indexOf('**4. Score and publish.**');
  expect(at, 'README\'s quick start has a "4. Score and publish." step').toBeGreaterThan(0);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at))?.[1] ?? '';
  return block.split('\n').filter((l) => l.trim() !== '');
}

describe('README quick start, on your own database', () => {
  let t: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    // The newcomer's table: the model's columns, but not seed's (no mark), so nothing may replace it.
    await seedCustomers(t.pool, { customers: 3000, seed: 7 });
    await t.pool.query('COMMENT ON TABLE customers IS NULL');
    dir = await mkdtemp(join(tmpdir(), 'sj-readme-'));
    await symlink(join(repoRoot, 'bin/scorejob'), join(dir, 'scorejob'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await t?.drop();
  });

  const digest = async () =>
    (await t.pool.query<{ md5: string }>(`SELECT md5(string_agg(c::text, '|' ORDER BY c.customer_id)) AS md5 FROM customers c`)).rows[0]!.md5;

  it('every command of the block exits 0, the last one lists a succeeded run, and the source table is as it was', async () => {
    const before = await digest();
    const lines = await readmeBlock();
    expect(
      lines.filter((l) => /^scorejob seed\b/.test(l)),
      'the block never seeds over a database of your own',
    ).toEqual([]);
    expect(lines[0]).toMatch(/^export DATABASE_URL=/);
    expect(
      lines.slice(1).every((l) => l.startsWith('scorejob ')),
      lines.join('\n'),
    ).toBe(true);
    const script = ['set -e', `export DATABASE_URL='${t.url}'`, ...lines.slice(1).map((l) => `echo "+ ${l.replace(/\s+#.*$/, '')}" >&2; ${l}`)].join('\n');
    const child = spawn('/bin/sh', ['-c', script], {
      cwd: dir,
      env: { PATH: `${dir}:${process.env.PATH}`, HOME: process.env.HOME },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, `${stderr}\n${stdout.slice(-3000)}`).toBe(0);
    const runs = await t.pool.query<{ status: string; dry_run: boolean }>('SELECT status, dry_run FROM scoring.score_runs ORDER BY run_id');
    expect(runs.rows).toEqual([
      { status: 'succeeded', dry_run: true },
      { status: 'succeeded', dry_run: false },
    ]);
    expect(stdout).toMatch(/succeeded/);
    expect(await digest()).toBe(before);
  }, 180_000);
});
