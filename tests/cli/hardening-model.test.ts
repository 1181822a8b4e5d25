import { rm, truncate, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defaults } from '../../src/config.js';
import { selectBackend } from '../../src/model/backend.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { makeModel } from '../helpers/makeModel.js';
import { modelCopy, runInProcess } from '../helpers/run.js';
import { expectRefusedUnchanged, ledgerState, type LedgerState } from '../helpers/state.js';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';

/** README "What can go wrong": the model. Each case: exit 2 before anything is written, one line naming the file or field. */
describe('what can go wrong: the model', () => {
  let t: TestDatabase;
  let before: LedgerState;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 300, seed: 9 });
    await runInProcess(t, { chunkSize: defaults.chunkSize });
  });
  beforeEach(async () => {
    before = await ledgerState(t);
  });
  afterAll(async () => t.drop());

  const runWith = (dir: string, ...extra: string[]) => runCliInProcess(['run', '--model', dir, ...extra], t.env);

  it('model directory missing', async () => {
    await expectRefusedUnchanged(t, before, await runWith('/nonexistent/model'), /model directory \/nonexistent\/model does not exist \(--model DIR\)/);
  });

  it('model.json not JSON', async () => {
    const dir = await modelCopy();
    await writeFile(join(dir, 'model.json'), 'this is not json');
    await expectRefusedUnchanged(t, before, await runWith(dir), /model\.json is not valid JSON/);
  });

  it('model.json truncated', async () => {
    const dir = await modelCopy();
    await truncate(join(dir, 'model.json'), 300);
    await expectRefusedUnchanged(t, before, await runWith(dir), /model\.json is not valid JSON \(truncated/);
  });

  it('a weight shard missing', async () => {
    const dir = await modelCopy();
    await rm(join(dir, 'weights.bin'));
    await expectRefusedUnchanged(t, before, await runWith(dir), /weights\.bin does not exist/);
  });

  it('a weight shard of the wrong size', async () => {
    const dir = await modelCopy();
    const file = join(dir, 'weights.bin');
    await writeFile(file, (await readFile(file)).subarray(0, 1000));
    await expectRefusedUnchanged(t, before, await runWith(dir), /weights\.bin has 1000 bytes, but model\.json's weight specs need \d+ bytes/);
  });

  it('manifest missing a field', async () => {
    const dir = await modelCopy((m) => delete m.version);
    await expectRefusedUnchanged(t, before, await runWith(dir), /manifest\.json: version/);
  });

  it('manifest field of the wrong type', async () => {
    const dir = await modelCopy((m) => (m.features[1].std = 'wide'));
    await expectRefusedUnchanged(t, before, await runWith(dir), /manifest\.json: features\[1\]\.std/);
  });

  it('features producing a width different from the model input', async () => {
    const dir = await modelCopy((m) => m.features[10].categories.push('moon'));
    await expectRefusedUnchanged(t, before, await runWith(dir), /produce 25 inputs but model\.json expects 24/);
  });

  it('a model with two outputs and no output.unit', async () => {
    await selectBackend('cpu');
    const dir = await mkdtemp(join(tmpdir(), 'sj-two-'));
    await makeModel(dir, { outputs: [1, 1] });
    const manifestFile = join(dir, 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestFile, 'utf8'));
    delete manifest.output.unit;
    await writeFile(manifestFile, JSON.stringify(manifest));
    await expectRefusedUnchanged(t, before, await runWith(dir), /model has 2 outputs; set output\.unit in manifest\.json/);
  });

  it('a --backend that is not installed', async () => {
    await expectRefusedUnchanged(
      t,
      before,
      await runCliInProcess(['run', '--backend', 'tensorflow'], t.env),
      /--backend tensorflow: @tensorflow\/tfjs-node is not installed/,
    );
  });

  it('a --backend that does not exist', async () => {
    await expectRefusedUnchanged(
      t,
      before,
      await runCliInProcess(['run', '--backend', 'gpu'], t.env),
      /--backend: "gpu" is not one of auto, tensorflow, wasm, cpu/,
    );
  });

  it('the cpu backend, forced, scores the same as wasm', async () => {
    const wasm = await runCliInProcess(['run', '--backend', 'wasm'], t.env);
    expect(wasm.code).toBe(0);
    const a = await t.pool.query('SELECT customer_id, score FROM scoring.customer_scores ORDER BY 1');
    const cpu = await runCliInProcess(['run', '--backend', 'cpu'], t.env);
    expect(cpu.code).toBe(0);
    expect(cpu.logs.at(-1)).toMatchObject({ backend: 'cpu' });
    const b = await t.pool.query('SELECT customer_id, score FROM scoring.customer_scores ORDER BY 1');
    expect(b.rows.length).toBe(a.rows.length);
    b.rows.forEach((r, i) => expect(r.score).toBeCloseTo(a.rows[i].score, 5));
    const backends = await t.pool.query(`SELECT backend FROM scoring.score_runs ORDER BY run_id DESC LIMIT 2`);
    expect(backends.rows).toEqual([{ backend: 'cpu' }, { backend: 'wasm' }]);
  });
});
