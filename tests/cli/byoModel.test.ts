import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeGraphModel, writeTwoInputModel, writeTwoOutputModel } from '../../scripts/fixtures/byoModels.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { selectBackend } from '../../src/model/backend.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { dense, embedding, readWeights, relu, sigmoid, weight } from '../helpers/forwardPass.js';
import { modelCopy } from '../helpers/run.js';
import { expectRefusedUnchanged, ledgerState, type LedgerState } from '../helpers/state.js';

type Row = Record<string, string | null>;

/** README "Bringing your own model": each model is scored by `scorejob run` and checked against a forward pass in plain JavaScript. */
describe('bringing your own model', () => {
  let t: TestDatabase;
  let root: string;
  let rows: Row[];
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 2000, seed: 18 });
    rows = (
      await t.pool.query<Row>(
        'SELECT customer_id::text AS key, tenure_months::text, orders_12m::text, revenue_12m::text, days_since_last_order::text, discount_share::text, email_open_rate::text, segment, region, is_subscriber::text FROM customers',
      )
    ).rows;
    root = await mkdtemp(join(tmpdir(), 'sj-byo-'));
    await selectBackend('cpu'); // the layers fixtures are built with TF.js
  });
  afterAll(async () => t.drop());

  /** Runs the model, then compares every published score of it with `expected` (float32 tolerance). */
  async function runAndCompare(dir: string, modelName: string, expected: (row: Row) => number | undefined, backend = 'auto'): Promise<void> {
    const r = await runCliInProcess(['run', '--model', dir, '--backend', backend], t.env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { rows: got } = await t.pool.query<{ k: string; s: number }>(
      'SELECT customer_id::text k, score s FROM scoring.customer_scores WHERE model_name = $1',
      [modelName],
    );
    const scores = new Map(got.map((g) => [g.k, g.s]));
    let compared = 0;
    let worst = 0;
    for (const row of rows) {
      const want = expected(row);
      const have = scores.get(row.key!);
      if (want === undefined) {
        expect(have, `customer ${row.key} should be rejected`).toBeUndefined();
        continue;
      }
      expect(have, `customer ${row.key}`).toBeDefined();
      worst = Math.max(worst, Math.abs(have! - want));
      compared++;
    }
    expect(scores.size).toBe(compared);
    expect(compared).toBeGreaterThan(1500);
    expect(worst).toBeLessThan(2e-6);
  }

  const num = (v: string | null | undefined, fill?: number): number | undefined => (v === null || v === undefined ? fill : Number(v));

  it('a graph model (GraphDef from tensorflowjs_converter): inputs and outputs matched by signature name', async () => {
    const dir = join(root, 'graph');
    await writeGraphModel(dir);
    const w = await readWeights(dir);
    const s = 'StatefulPartitionedCall/model';
    await runAndCompare(dir, 'byo-graph', (row) => {
      const x = [
        (num(row.tenure_months)! - 30) / 20,
        (num(row.revenue_12m)! - 3000) / 10000,
        (num(row.days_since_last_order, 730)! - 140) / 230,
        num(row.discount_share)!,
        num(row.email_open_rate, 0.25)!,
      ];
      const h = relu(dense(x, weight(w, `${s}/dense/MatMul/ReadVariableOp`), weight(w, `${s}/dense/BiasAdd/ReadVariableOp`)));
      return sigmoid(dense(h, weight(w, `${s}/churn/MatMul/ReadVariableOp`), weight(w, `${s}/churn/BiasAdd/ReadVariableOp`)))[0];
    });
  });

  it('a functional model with three named inputs, two int32 ids through Embeddings (index: unknown and NULL ids)', async () => {
    const dir = join(root, 'two-inputs');
    await writeTwoInputModel(dir);
    const w = await readWeights(dir);
    const segments = ['consumer', 'smb', 'enterprise'];
    const regions = ['north', 'south', 'east', 'west']; // 'central' is unknown: id 4; NULL is the fill id 5
    await runAndCompare(
      dir,
      'byo-two-inputs',
      (row) => {
        const numeric = [num(row.tenure_months)!, num(row.discount_share)!, num(row.email_open_rate, 0.25)!, num(row.days_since_last_order, 730)!];
        const region = row.region === null ? 5 : regions.includes(row.region!) ? regions.indexOf(row.region!) : 4;
        const x = [
          ...numeric,
          ...embedding(weight(w, 'segment_embedding/embeddings'), segments.indexOf(row.segment!)),
          ...embedding(weight(w, 'region_embedding/embeddings'), region),
        ];
        const h = relu(dense(x, weight(w, 'hidden/kernel'), weight(w, 'hidden/bias')));
        return sigmoid(dense(h, weight(w, 'churn/kernel'), weight(w, 'churn/bias')))[0];
      },
      'wasm',
    );
    expect(rows.some((r) => r.region === null) && rows.some((r) => r.region === 'central')).toBe(true);
  });

  it('a model with two outputs: the manifest picks the second by name', async () => {
    const dir = join(root, 'two-outputs');
    await writeTwoOutputModel(dir);
    const w = await readWeights(dir);
    const segments = ['consumer', 'smb', 'enterprise'];
    await runAndCompare(dir, 'byo-two-outputs', (row) => {
      const x = [
        (num(row.tenure_months)! - 30) / 20,
        (num(row.orders_12m)! - 8) / 13,
        ...segments.map((c) => (c === row.segment ? 1 : 0)),
        row.is_subscriber === 'true' ? 1 : 0,
      ];
      const h = relu(dense(x, weight(w, 'hidden/kernel'), weight(w, 'hidden/bias')));
      return sigmoid(dense(h, weight(w, 'value/kernel'), weight(w, 'value/bias')))[0];
    });
  });

  describe('refused at start-up: exit 2, one line naming the file, input or op, nothing written', () => {
    let before: LedgerState;
    beforeEach(async () => {
      before = await ledgerState(t);
    });

    it('an op TF.js does not implement', async () => {
      const dir = join(root, 'bad-op');
      await writeGraphModel(dir, { op: 'FancyRelu' });
      const r = await runCliInProcess(['run', '--model', dir], t.env);
      await expectRefusedUnchanged(
        t,
        before,
        r,
        new RegExp(`${join(dir, 'model.json')}: the graph uses op FancyRelu, which TF.js \\S+ does not implement \\(on the \\w+ backend or any other\\)`),
      );
    });

    it('an op the chosen backend lacks', async () => {
      const dir = join(root, 'einsum');
      await writeGraphModel(dir, { einsum: true });
      const r = await runCliInProcess(['run', '--model', dir, '--backend', 'wasm'], t.env);
      await expectRefusedUnchanged(t, before, r, /model\.json: the model needs op Einsum, which the wasm backend does not have \(try --backend cpu\)$/m);
    });

    it('an Embedding too small for the ids the manifest produces (categories, unknown and NULL ids against input_dim), at run and inspect; following the advice runs', async () => {
      const dir = join(root, 'embedding-small');
      await writeTwoInputModel(dir);
      const extra = await modelCopy((m) => m.features[4].categories.push('public'), dir); // ids 0-3, unknown 4; input_dim 4
      const segment =
        /^scorejob: \S+manifest\.json: features\[4\] \(segment, index\) produces ids 0 to 4 \(categories 0-3, unknown 4\) but feeds the Embedding layer "segment_embedding" \(input "segment_id"\) with input_dim 4, ids 0 to 3: list only the categories the model was trained with, or re-export the model with input_dim 5 or more$/m;
      await expectRefusedUnchanged(t, before, await runCliInProcess(['run', '--model', extra], t.env), segment);
      await expectRefusedUnchanged(t, before, await runCliInProcess(['model', 'inspect', extra], t.env), segment);
      const nullId = await modelCopy((m) => (m.features[5].fill = 6), dir); // region: unknown 4, NULL 6; input_dim 6
      const region =
        /features\[5\] \(region, index\) produces ids 0 to 6 \(categories 0-3, unknown 4, NULL 6\) but feeds the Embedding layer "region_embedding" \(input "region_id"\) with input_dim 6, ids 0 to 5: /;
      await expectRefusedUnchanged(t, before, await runCliInProcess(['run', '--model', nullId], t.env), region);
      const followed = await modelCopy((m) => m.features[4].categories.pop(), extra);
      expect((await runCliInProcess(['run', '--model', followed], t.env)).code).toBe(0);
    });

    it('--reasons with an int32 (Embedding) input: ids have no gradient', async () => {
      const dir = join(root, 'reasons-ids');
      await writeTwoInputModel(dir);
      const r = await runCliInProcess(['run', '--model', dir, '--reasons', '2'], t.env);
      await expectRefusedUnchanged(
        t,
        before,
        r,
        /--reasons needs gradients, and the model input "segment_id" of \S+model\.json is int32 \(index features are ids, with no gradient\); run without --reasons, or use a model fed one_hot features$/m,
      );
    });

    it('a feature naming an input the model does not have', async () => {
      const dir = join(root, 'misnamed');
      await writeTwoInputModel(dir);
      const copy = await modelCopy((m) => (m.features[4].input = 'segment'), dir);
      const r = await runCliInProcess(['run', '--model', copy], t.env);
      await expectRefusedUnchanged(
        t,
        before,
        r,
        /manifest\.json: features\[4\]\.input "segment" is not an input of the model \(its inputs: "numeric", "segment_id", "region_id"\)/,
      );
    });
  });
});
