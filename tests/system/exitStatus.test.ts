import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { adminUrl } from '../helpers/db.js';
import { repoRoot } from '../helpers/cli.js';

const vitestBin = join(repoRoot, 'node_modules/vitest/vitest.mjs');
const fixtureConfig = 'tests/fixtures/vitest-exit/vitest.config.ts';

/** Runs vitest on the fixture suite in a child process, as `npm test` runs it, with only the given environment. */
function vitest(args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [vitestBin, 'run', '--config', fixtureConfig, ...args], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** The test command's exit status is what CI and every other pipeline trust (README "Development"). */
describe('the test harness', () => {
  it('a failing test makes vitest exit 1 with the server from TEST_DATABASE_URL', async () => {
    const r = await vitest([], { TEST_DATABASE_URL: adminUrl() });
    expect(r.output).toMatch(/1 failed/);
    expect(r.code, r.output).toBe(1);
  });

  it('a failing test makes vitest exit 1 with embedded PostgreSQL (its exit hook must not turn the status into 0)', async () => {
    const r = await vitest([], {});
    expect(r.output).toMatch(/1 failed/);
    expect(r.code, r.output).toBe(1);
  });

  it('a passing suite exits 0', async () => {
    const r = await vitest(['--testNamePattern', '^passes$'], { TEST_DATABASE_URL: adminUrl() });
    expect(r.output).toMatch(/1 passed/);
    expect(r.code, r.output).toBe(0);
  });
});
