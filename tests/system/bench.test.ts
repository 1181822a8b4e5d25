import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/** A smoke run of `npm run bench` so it cannot rot; no assertion on speed (that is the benchmark's job, not a test's). */
describe('npm run bench', () => {
  let db: TestDatabase;
  let out: string;
  beforeAll(async () => {
    db = await createTestDatabase({ migrated: false });
    out = await mkdtemp(join(tmpdir(), 'scorejob-bench-'));
  });
  afterAll(async () => {
    await db?.drop();
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('seeds, runs A and B, and writes the figures as JSON with positive numbers', async () => {
    // --no-build: `npm test` builds first, and rebuilding dist/ under the other test files' children would race them.
    const args = ['--import', 'tsx', 'scripts/bench.ts', '--customers', '20000', '--rounds', '1', '--chunk-size', '5000', '--out', out, '--no-build'];
    const r = await run(args, { DATABASE_URL: db.url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('seeding 20000 customers');
    expect(r.stdout).toContain('seeding 20000 rows of bench_features');
    expect(r.stdout.match(/ratio A\/B .*: \d+\.\d\d/g)).toHaveLength(2);

    const files = await readdir(out);
    expect(files).toContain('latest.json');
    expect(files.some((f) => /^results-.*\.json$/.test(f))).toBe(true);
    const results = JSON.parse(await readFile(join(out, 'latest.json'), 'utf8'));
    expect(results.params).toMatchObject({ customers: 20000, rounds: 1, chunkSize: 5000, tables: ['customers', 'features'] });
    expect(Object.keys(results.tables)).toEqual(['customers', 'features']);
    for (const table of Object.values<any>(results.tables)) {
      expect(table.ratio).toBeGreaterThan(0);
      for (const side of [table.job, table.baseline]) {
        for (const key of ['rowsPerSecond', 'wallMs', 'peakRssMb', 'nodeCpuMs']) {
          expect(side[key].median, key).toBeGreaterThan(0);
          expect(side[key].min, key).toBeGreaterThan(0);
          expect(side[key].max, key).toBeGreaterThanOrEqual(side[key].min);
        }
        expect(side.rounds).toHaveLength(1);
        expect(side.rounds[0].rows).toBe(20000);
      }
      expect(table.job.jobRowsPerSecond.median).toBeGreaterThan(0);
      expect(table.job.startupMs).toBeGreaterThan(0);
      expect(table.baseline.copyRowsPerSecond.median).toBeGreaterThan(0);
      for (const stage of ['plan', 'read', 'transform', 'predict', 'write', 'publish']) expect(table.job.timingsMs[stage], stage).toBeGreaterThan(0);
    }

    // A second invocation finds the data seeded and does not seed again.
    const again = await run(args, { DATABASE_URL: db.url });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toContain('seeding');
  });
});

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
