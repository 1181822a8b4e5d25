import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keras3SequentialNormalization, keras3StoreName, writeKeras3FunctionalModel, writeKeras3SequentialModel } from '../../scripts/fixtures/keras3Models.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { batchNorm, dense, embedding, normalize, readWeights, relu, sigmoid, weight, type Weight } from '../helpers/forwardPass.js';

type Row = Record<string, string | null>;

/** Every file of the directory and its bytes' sha256: a load must not rewrite any of them. */
async function fingerprints(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of (await readdir(dir)).sort())
    out[f] = createHash('sha256')
      .update(await readFile(join(dir, f)))
      .digest('hex');
  return out;
}

const vector = (w: Weight) => Array.from(w.data);

/** README "Bringing your own model": Keras 3 exports load as they are, scored like an independent forward pass. */
describe('models exported from Keras 3', () => {
  let t: TestDatabase;
  let root: string;
  let rows: Row[];
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 2000, seed: 19 });
    rows = (
      await t.pool.query<Row>(
        'SELECT customer_id::text AS key, tenure_months::text, revenue_12m::text, days_since_last_order::text, discount_share::text, email_open_rate::text, segment, region FROM customers',
      )
    ).rows;
    root = await mkdtemp(join(tmpdir(), 'sj-keras3-'));
  });
  afterAll(async () => t.drop());

  /** Runs the model, then compares every published score with `expected`; the model's files are unchanged. */
  async function runAndCompare(dir: string, modelName: string, expected: (row: Row) => number): Promise<void> {
    const before = await fingerprints(dir);
    const inspect = await runCliInProcess(['model', 'inspect', dir], t.env);
    expect(inspect.stderr).toBe('');
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toMatch(/^format {3}layers-model \(predict\)$/m);
    const r = await runCliInProcess(['run', '--model', dir], t.env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await fingerprints(dir)).toEqual(before);
    const { rows: got } = await t.pool.query<{ k: string; s: number }>(
      'SELECT customer_id::text k, score s FROM scoring.customer_scores WHERE model_name = $1',
      [modelName],
    );
    const scores = new Map(got.map((g) => [g.k, g.s]));
    let worst = 0;
    for (const row of rows) {
      const have = scores.get(row.key!);
      expect(have, `customer ${row.key}`).toBeDefined();
      worst = Math.max(worst, Math.abs(have! - expected(row)));
    }
    expect(scores.size).toBe(rows.length);
    expect(worst).toBeLessThan(1e-5);
  }

  const num = (v: string | null | undefined, fill?: number): number => (v === null || v === undefined ? fill! : Number(v));

  it.each([
    ['', false],
    [", converted from a .keras file (weights named by their store path, with the optimizer's)", true],
  ])(
    'a functional model with three inputs: Normalization (adapted: weights), Embeddings, Concatenate, BatchNormalization, Dropout%s',
    async (_, weightsStore) => {
      const dir = join(root, weightsStore ? 'functional-store' : 'functional');
      await writeKeras3FunctionalModel(dir, { weightsStore });
      const stored = await readWeights(dir);
      const named = (name: string) => weight(stored, weightsStore ? keras3StoreName(name) : name);
      const segments = ['consumer', 'smb', 'enterprise'];
      const regions = ['north', 'south', 'east', 'west']; // 'central' is unknown: id 4; NULL is the fill id 5
      await runAndCompare(dir, 'keras3-functional', (row) => {
        const numeric = normalize(
          [num(row.tenure_months), num(row.discount_share), num(row.email_open_rate, 0.25), num(row.days_since_last_order, 730)],
          vector(named('normalization/mean')),
          vector(named('normalization/variance')),
        );
        const region = row.region === null ? 5 : regions.includes(row.region!) ? regions.indexOf(row.region!) : 4;
        const x = [
          ...numeric,
          ...embedding(named('segment_embedding/embeddings'), segments.indexOf(row.segment!)),
          ...embedding(named('region_embedding/embeddings'), region),
        ];
        const h = relu(dense(x, named('hidden/kernel'), named('hidden/bias')));
        const b = 'batch_normalization';
        const n = batchNorm(
          h,
          { gamma: named(`${b}/gamma`), beta: named(`${b}/beta`), mean: named(`${b}/moving_mean`), variance: named(`${b}/moving_variance`) },
          0.001,
        );
        return sigmoid(dense(n, named('churn/kernel'), named('churn/bias')))[0]!; // Dropout: the identity at inference
      });
      expect(rows.some((r) => r.region === null) && rows.some((r) => r.region === 'central')).toBe(true);
    },
  );

  it('a Sequential model (weights named under the model) whose Normalization has its mean and variance in the config', async () => {
    const dir = join(root, 'sequential');
    await writeKeras3SequentialModel(dir);
    const w = await readWeights(dir);
    const { mean, variance } = keras3SequentialNormalization;
    await runAndCompare(dir, 'keras3-sequential', (row) => {
      const x = normalize(
        [num(row.tenure_months), num(row.revenue_12m), num(row.days_since_last_order, 730), num(row.discount_share), num(row.email_open_rate, 0.25)],
        mean,
        variance,
      );
      const s = 'keras3_sequential';
      const h = relu(dense(x, weight(w, `${s}/dense/kernel`), weight(w, `${s}/dense/bias`)));
      return sigmoid(dense(h, weight(w, `${s}/dense_1/kernel`), weight(w, `${s}/dense_1/bias`)))[0]!;
    });
    // Gradients pass through the Normalization layer: --reasons works on it.
    const explained = await runCliInProcess(['run', '--model', dir, '--reasons', '5'], t.env);
    expect(explained.stderr).toBe('');
    expect(explained.code).toBe(0);
    const { rows: reasons } = await t.pool.query<{ n: number; zero: number }>(
      "SELECT count(*)::int n, count(*) FILTER (WHERE contribution = 0)::int zero FROM scoring.customer_score_reasons WHERE model_name = 'keras3-sequential'",
    );
    expect(reasons[0]!.n).toBe(rows.length * 5);
    expect(reasons[0]!.zero).toBeLessThan(rows.length);
  });
});
