import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, sqlDir } from '../../src/db/migrate.js';
import { Ledger, type RunParams } from '../../src/ledger/ledger.js';
import { attachRunTable, registerModel } from '../../src/ledger/runAttach.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { silentLog } from '../helpers/run.js';

const params: RunParams = {
  modelDir: 'm',
  chunkSize: 10,
  dryRun: false,
  keepRuns: 12,
  maxRejectRatio: 0,
  chunkAttempts: 1,
  backendChoice: 'cpu',
  source: { table: 'customers', key: 'customer_id' },
};

/**
 * sql/007_downstream.sql on a schema at version 6 with published runs: the publications so far are
 * recorded, the pointer learns the run before it, and the kept runs get percentiles.
 */
describe('upgrading a schema with published runs to version 7', () => {
  let t: TestDatabase;
  let dir: string;
  const runs: string[] = [];

  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    dir = await mkdtemp(join(tmpdir(), 'sj-sql6-'));
    for (const f of ['001_init.sql', '002_publish_visibility.sql', '003_run_lock.sql', '004_chunk_rows.sql', '005_run_failures.sql', '006_models.sql'])
      await cp(new URL(f, sqlDir), join(dir, f));
    const c = await t.pool.connect();
    try {
      await migrate(c, 'scoring', pathToFileURL(`${dir}/`));
      const ledger = new Ledger('scoring');
      for (let i = 1; i <= 3; i++) {
        const runId = await ledger.createRun(c, {
          trigger: 'manual',
          dryRun: false,
          modelName: 'm',
          modelVersion: `${i}`,
          modelSha256: 'x',
          backend: 'cpu',
          params,
          host: 'h',
          pid: 1,
        });
        await c.query('BEGIN');
        // The plan as version 6 recorded it (today's ledger also writes columns of later versions).
        await c.query('INSERT INTO scoring.score_chunks (run_id, chunk_no, key_lo, key_hi) VALUES ($1, 1, NULL, NULL)', [runId]);
        await c.query('UPDATE scoring.score_runs SET chunks_total = 1 WHERE run_id = $1', [runId]);
        await ledger.storage.ensureScoreTable(c, runId);
        await c.query('COMMIT');
        await registerModel(c, ledger, 'm', silentLog);
        await attachRunTable(c, ledger, runId, silentLog);
        await c.query(`INSERT INTO ${ledger.runTable(runId)} (customer_id, score) SELECT g, g / 200.0 + $1 / 10.0 FROM generate_series(1, 200) g`, [i]);
        // Published as version 6 did it (the third run is left unpublished, failed).
        if (i < 3) {
          await c.query(
            `INSERT INTO scoring.published_run (model_name, run_id, published_at) VALUES ('m', $1, now())
                          ON CONFLICT (model_name) DO UPDATE SET run_id = EXCLUDED.run_id, published_at = EXCLUDED.published_at`,
            [runId],
          );
          await c.query(`UPDATE scoring.score_runs SET status = 'succeeded', finished_at = now(), published_at = clock_timestamp() WHERE run_id = $1`, [runId]);
        } else {
          await c.query(`UPDATE scoring.score_runs SET status = 'failed', finished_at = now() WHERE run_id = $1`, [runId]);
        }
        runs.push(runId);
      }
      await migrate(c, 'scoring');
    } finally {
      c.release();
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await t.drop();
  });

  it('records the publications so far, the previous run, and percentiles of the kept published runs', async () => {
    const pubs = await t.pool.query(
      'SELECT run_id::text, previous_run_id::text, kind, is_current, in_history FROM scoring.published_runs ORDER BY publication_id',
    );
    expect(pubs.rows).toEqual([
      { run_id: runs[0], previous_run_id: null, kind: 'full', is_current: false, in_history: true },
      { run_id: runs[1], previous_run_id: runs[0], kind: 'full', is_current: true, in_history: true },
    ]);
    const changes = await t.pool.query(
      'SELECT count(*)::int AS n, count(previous_score)::int AS p, min(delta)::numeric(4,2) AS d FROM scoring.customer_score_changes',
    );
    expect(changes.rows[0]).toEqual({ n: 200, p: 200, d: '0.10' });
    const ranks = await t.pool.query('SELECT min(percentile) AS lo, max(percentile) AS hi, count(band)::int AS banded FROM scoring.customer_score_history');
    expect(ranks.rows[0]).toEqual({ lo: 1, hi: 100, banded: 0 });
    const unpublished = await t.pool.query('SELECT score_cuts FROM scoring.score_runs WHERE run_id = $1', [runs[2]]);
    expect(unpublished.rows[0]).toEqual({ score_cuts: null });
  });
});
