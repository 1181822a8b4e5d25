import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { selectBackend } from '../../src/model/backend.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { type CliResult } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runStatus } from '../helpers/hold.js';
import { modelCopy } from '../helpers/run.js';

const customers = 3000;
const runIdOf = (r: CliResult) => r.logs.find((l) => /started/.test(String(l.msg)))?.run_id as string;

/**
 * README "What can go wrong": a failed run's advice is what works for its failure, and following it
 * succeeds. A model error fails the same way on every resume: fix, then a new run. A bad value in the
 * source (a view's cast) names the chunk's key range to fix, then resume.
 */
describe('advice that works', () => {
  let t: TestDatabase;
  let root: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers, seed: 29 });
    root = await mkdtemp(join(tmpdir(), 'sj-advice-'));
    await selectBackend('cpu'); // the fixture model is built with TF.js
  });
  afterAll(async () => t?.drop());

  it("an id outside an Embedding (a model error) advises a new run once fixed, not resume; the fixed model's new run succeeds", async () => {
    // A float input cast to ids by an Embedding of 4: orders_12m's raw values (up to hundreds) are out of its range.
    const dir = join(root, 'embedding');
    await writeEmbeddingModel(dir, 4);
    const r = await runCliInProcess(['run', '--model', dir, '--backend', 'cpu', '--chunk-size', '500'], t.env);
    const runId = runIdOf(r);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `^scorejob: run ${runId} failed: the model failed on chunk \\d+'s input: .*GatherV2.*; fix the model or the data it is fed .*then start a new run with \`scorejob run\``,
      ),
    );
    expect(r.stderr).not.toMatch(/scorejob resume/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(await runStatus(t, runId)).toMatchObject({ status: 'failed', error_kind: 'model' });
    // A resume fails the same way (what the advice says, and why it does not offer it).
    const resumed = await runCliInProcess(['resume', runId], t.env);
    expect(resumed.code).toBe(1);
    expect(resumed.stderr).toMatch(/GatherV2/);

    // Following the advice: the model fixed (an Embedding as wide as the ids it is fed), a new run.
    const maxOrders = (await t.pool.query<{ m: number }>('SELECT max(orders_12m)::int m FROM customers')).rows[0]!.m;
    await writeEmbeddingModel(dir, maxOrders + 1);
    const fixed = await runCliInProcess(['run', '--model', dir, '--backend', 'cpu', '--chunk-size', '500'], t.env);
    expect(fixed.stderr).toBe('');
    expect(fixed.code).toBe(0);
  });

  it("a bad value through a view's cast names the chunk's key range to fix, then resume; following it succeeds", async () => {
    await t.pool.query(`CREATE TABLE customers_text AS SELECT * FROM customers`);
    await t.pool.query(`ALTER TABLE customers_text ALTER COLUMN tenure_months TYPE text`);
    const cols = (
      await t.pool.query<{ c: string }>(`SELECT column_name c FROM information_schema.columns WHERE table_name = 'customers_text' ORDER BY ordinal_position`)
    ).rows.map((x) => x.c);
    await t.pool.query(
      `CREATE VIEW customers_cast AS SELECT ${cols.map((c) => (c === 'tenure_months' ? 'tenure_months::integer AS tenure_months' : c)).join(', ')} FROM customers_text`,
    );
    const bad = (await t.pool.query<{ id: string }>('SELECT customer_id::text id FROM customers_text ORDER BY customer_id OFFSET 1700 LIMIT 1')).rows[0]!.id;
    const updated = await t.pool.query(`UPDATE customers_text SET tenure_months = 'twelve' WHERE customer_id = $1`, [bad]);
    expect(updated.rowCount).toBe(1);
    const dir = await modelCopy((m) => (m.source = { table: 'customers_cast', key: 'customer_id' }));

    const r = await runCliInProcess(['run', '--model', dir, '--chunk-size', '500'], t.env);
    const runId = runIdOf(r);
    expect(r.code, r.stderr).toBe(1);
    const chunk = (
      await t.pool.query<{ chunk_no: number; lo: string; hi: string }>(
        'SELECT chunk_no, key_lo::text lo, key_hi::text hi FROM scoring.score_chunks WHERE run_id = $1 AND key_lo < $2 AND key_hi >= $2',
        [runId, bad],
      )
    ).rows[0]!;
    const error = 'invalid input syntax for type integer: "twelve"';
    expect(r.stderr.trim()).toBe(
      `scorejob: run ${runId} failed: ${error} (during chunk ${chunk.chunk_no}); fix the source rows in customer_id (${chunk.lo}, ${chunk.hi}] (${error}), then \`scorejob resume ${runId}\``,
    );
    expect(await runStatus(t, runId)).toMatchObject({ status: 'failed', error_kind: 'data' });

    // Following the advice: the row fixed, the run resumed.
    await t.pool.query(`UPDATE customers_text SET tenure_months = '12' WHERE customer_id = $1`, [bad]);
    const resumed = await runCliInProcess(['resume', runId], t.env);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    const published = await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.customer_scores WHERE run_id = $1', [runId]);
    expect(published.rows[0]!.n).toBe(customers);
  });
});

/** A real TF.js model: one float input, cast to ids by an Embedding of `inputDim`, then a sigmoid. */
async function writeEmbeddingModel(dir: string, inputDim: number): Promise<void> {
  const input = tfl.input({ shape: [1], name: 'orders' });
  const embedded = tfl.layers
    .flatten()
    .apply(
      tfl.layers
        .embedding({ inputDim, outputDim: 2, embeddingsInitializer: tfl.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: 3 }) })
        .apply(input),
    );
  const output = tfl.layers
    .dense({ units: 1, activation: 'sigmoid', kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }) })
    .apply(embedded) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: output });
  await mkdir(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const modelJson = {
        modelTopology: a.modelTopology,
        format: a.format,
        generatedBy: a.generatedBy,
        weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
      };
      await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
      await writeFile(join(dir, 'weights.bin'), Buffer.from(tf.io.CompositeArrayBuffer.join(a.weightData)));
      return { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } };
    }),
  );
  model.dispose();
  const manifest = {
    name: 'orders-embedding',
    version: `1.${inputDim}`,
    description: 'Test fixture: orders_12m as an Embedding id.',
    source: { table: 'customers', key: 'customer_id' },
    features: [{ column: 'orders_12m', transform: 'raw' }],
    output: { name: 'test_score' },
  };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
}
