import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '../../..');
const depcruise = join(repo, 'node_modules/.bin/depcruise');
const config = join(repo, '.dependency-cruiser.cjs');

/** Runs the import-boundary check (`npm run lint:deps`) over `src/` of `cwd`. */
async function check(cwd: string): Promise<{ code: number; out: string }> {
  try {
    const r = await promisify(execFile)(depcruise, ['src', '--config', config, '--output-type', 'err'], { cwd });
    return { code: 0, out: r.stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function tree(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'scorejob-layers-'));
  dirs.push(root);
  const all = { 'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }), ...files };
  for (const [path, text] of Object.entries(all)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

describe('the import-boundary check (npm run lint:deps)', () => {
  it('passes on the project: no cycles, no import against the layer order', async () => {
    const r = await check(repo);
    expect(r.out).toContain('no dependency violations found');
    expect(r.code).toBe(0);
  }, 60_000);

  it('fails on each kind of forbidden import, naming the rule and the import', async () => {
    const root = await tree({
      'src/errors.ts': 'export const e = 1;\n',
      'src/db/pool.ts': 'export const pool = 1;\n',
      'src/ledger/ledger.ts': "import { x } from '../run/x.js';\nexport const ledger = x;\n",
      'src/stats/psi.ts': "import { ledger } from '../ledger/ledger.js';\nimport { e } from '../errors.js';\nexport const psi = ledger + e;\n",
      'src/model/scorer.ts': "import { pool } from '../db/pool.js';\nexport const scorer = pool;\n",
      'src/run/x.ts': "import { y } from './y.js';\nexport const x = 1;\nexport const xy = y;\n",
      'src/run/y.ts': "import { x } from './x.js';\nimport { helper } from '../../tests/helper.js';\nexport const y = x + helper;\n",
      'tests/helper.ts': 'export const helper = 1;\n',
    });
    const r = await check(root);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('no-upward-from-ledger: src/ledger/ledger.ts → src/run/x.ts');
    expect(r.out).toContain('no-upward-from-stats: src/stats/psi.ts → src/ledger/ledger.ts');
    expect(r.out).toContain('stats-pure: src/stats/psi.ts → src/ledger/ledger.ts');
    expect(r.out).not.toContain('src/stats/psi.ts → src/errors.ts');
    expect(r.out).toContain('model-not-db: src/model/scorer.ts → src/db/pool.ts');
    expect(r.out).toMatch(/no-circular: src\/run\/[xy]\.ts/);
    expect(r.out).toContain('no-tests-or-scripts: src/run/y.ts → tests/helper.ts');
  }, 60_000);
});
