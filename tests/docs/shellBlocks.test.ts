import { spawn } from 'node:child_process';
import { cp, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { repoRoot } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/db.js';
import { blocksOf, docPages, isShell, type DocBlock } from '../helpers/docBlocks.js';

/**
 * Every shell block of README.md and docs/*.md runs as written, as a newcomer would paste it: in a fresh
 * database holding their own `customers` table (3,000 customers, not made by `scorejob seed`), from a
 * folder with scorejob's `models/` and `sql/`, `scorejob` on PATH (what `npm link` does). The only
 * change: an `export DATABASE_URL=…` line gets the test database's URL. A block that cannot run here
 * says why right above it (`<!-- not run in tests: … -->`); what the reader did before it, if anything,
 * is in `<!-- before this block in tests: … -->`.
 */
const blocks = docPages()
  .flatMap((f) => blocksOf(f))
  .filter(isShell);
const runnable = blocks.filter((b) => b.notRun === undefined);

async function runBlock(b: DocBlock): Promise<{ code: number | null; out: string }> {
  const t = await createTestDatabase({ migrated: false });
  const dir = await mkdtemp(join(tmpdir(), 'sj-docs-'));
  try {
    await seedCustomers(t.pool, { customers: 3000, seed: 7 });
    await t.pool.query('COMMENT ON TABLE customers IS NULL');
    await cp(join(repoRoot, 'models'), join(dir, 'models'), { recursive: true });
    await cp(join(repoRoot, 'sql'), join(dir, 'sql'), { recursive: true });
    await symlink(join(repoRoot, 'bin/scorejob'), join(dir, 'scorejob'));
    const code = b.code.replace(/^export DATABASE_URL=.*$/gm, `export DATABASE_URL='${t.url}'`);
    const script = ['set -e', b.setup ?? '', code].join('\n');
    const child = spawn('bash', ['-c', script], {
      cwd: dir,
      env: { PATH: `${dir}:${process.env.PATH}`, HOME: process.env.HOME, DATABASE_URL: t.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    return { code: await new Promise<number | null>((resolve) => child.on('close', resolve)), out };
  } finally {
    await rm(dir, { recursive: true, force: true });
    await t.drop();
  }
}

// Each block has a database and a folder of its own: the blocks run side by side (vitest's maxConcurrency at a time).
describe.concurrent('the shell blocks of the docs', () => {
  it('are found on every page that has them, and each block not run says why', ({ expect }) => {
    expect(runnable.length).toBeGreaterThanOrEqual(10);
    for (const b of blocks) if (b.notRun !== undefined) expect(b.notRun.length, `${b.file}:${b.line}`).toBeGreaterThan(10);
  });

  for (const b of runnable) {
    it(`${b.file}:${b.line} runs as written`, async ({ expect }) => {
      const r = await runBlock(b);
      expect(r.code, `${b.file}:${b.line}\n${b.code}\n--- output ---\n${r.out.slice(-4000)}`).toBe(0);
    }, 120_000);
  }
});
