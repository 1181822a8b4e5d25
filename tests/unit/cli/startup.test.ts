import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../helpers/cli.js';

/** The npm packages `scorejob <args>` loads (a resolve hook lists them), whatever the command then does. */
async function packagesLoaded(args: string[]): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'sj-startup-'));
  const list = join(dir, 'packages.txt');
  try {
    const hook = join(repoRoot, 'tests/fixtures/loader/listPackages.mjs');
    // No database answers on port 1: the commands that need one fail fast, after their modules are loaded.
    await promisify(execFile)(process.execPath, ['--import', hook, join(repoRoot, 'bin/scorejob'), ...args], {
      cwd: repoRoot,
      env: { ...process.env, LIST_PACKAGES_TO: list, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
    }).catch(() => undefined);
    return (await readFile(list, 'utf8')).split('\n').filter(Boolean).sort();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Commands that do not score load no model backend: TF.js is ~0.4 s of CPU at every start, which
 * `scorejob runs`, `--help`, `migrate`, `publish` and `rollback` (run by people and by cron wrappers) do not pay.
 */
describe('start-up', () => {
  it.each([['--help'], ['runs'], ['migrate'], ['rollback'], ['publish', '1', '--force']])('scorejob %s loads no @tensorflow package', async (...args) => {
    const loaded = await packagesLoaded(args);
    expect(loaded).toContain('commander'); // the hook saw the program load
    expect(loaded.filter((p) => p.startsWith('@tensorflow/'))).toEqual([]);
  });

  it('scorejob model inspect loads TF.js (the hook sees a model command load it)', async () => {
    const loaded = await packagesLoaded(['model', 'inspect']);
    expect(loaded).toContain('@tensorflow/tfjs-core');
  });
});
