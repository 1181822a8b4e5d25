import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { seedOutcomes } from '../../src/dev/seedOutcomes.js';
import { syncOutcomes } from '../../src/features/outcomes/syncOutcomes.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { day, modelWithOutcomes, publishedAt } from '../helpers/outcomes.js';
import { runInProcess } from '../helpers/run.js';

/**
 * Outcomes drawn from the model's own scores (seed --outcomes) are calibrated by construction: the sync must
 * find it, and the AUC it estimated from the scores alone must be the one realised.
 */
describe('outcomes seeded from the scores', () => {
  let t: TestDatabase;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 60_000, seed: 11 });
  }, 120_000);
  afterAll(async () => t.drop());

  it('expected calibration error below 0.01, estimated AUC within 0.01 of the realised one, per run and band', async () => {
    const dir = await modelWithOutcomes();
    const { runId } = await runInProcess(t, { modelDir: dir, chunkSize: 20_000 });
    const seeded = await seedOutcomes(t.pool, { schema: 'scoring', seed: 9 });
    expect(seeded.rows).toBe(
      60_000 - (await t.pool.query<{ n: number }>('SELECT rows_rejected::int n FROM scoring.score_runs WHERE run_id = $1', [runId])).rows[0]!.n,
    );
    await syncOutcomes(t.pool, { schema: 'scoring', modelDir: dir, asOf: new Date((await publishedAt(t, runId)).getTime() + 91 * day) });
    const { rows } = await t.pool.query(
      `SELECT band, coverage, auc, estimated_auc, calibration_error, positive_rate, expected_positive_rate FROM scoring.model_performance WHERE run_id = $1 ORDER BY band NULLS FIRST`,
      [runId],
    );
    const whole = rows[0];
    expect(whole.band).toBeNull();
    expect(whole.coverage).toBe(1);
    expect(whole.calibration_error).toBeLessThan(0.01);
    expect(Math.abs(whole.auc - whole.estimated_auc)).toBeLessThan(0.01);
    expect(Math.abs(whole.positive_rate - whole.expected_positive_rate)).toBeLessThan(0.01);
    for (const band of rows.slice(1)) expect(Math.abs(band.positive_rate - band.expected_positive_rate), band.band).toBeLessThan(0.02);
  }, 180_000);
});
