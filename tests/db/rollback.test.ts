import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { UsageError } from '../../src/errors.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { publishedChannel, type PublishedEvent } from '../../src/ledger/publications.js';
import { applyRetention } from '../../src/ledger/retention.js';
import { rollback } from '../../src/publish/rollback.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runInProcess, silentLog, testConfig } from '../helpers/run.js';
import { waitUntil } from '../helpers/waitUntil.js';

/**
 * Issue 15: `scorejob rollback` puts an earlier kept run back at once, without rescoring; every publish
 * and rollback is recorded and announced once (NOTIFY scorejob_published) when its scores are readable.
 */
describe('rollback and the publish event', () => {
  let t: TestDatabase;
  let listener: pg.Client;
  const heard: { event: PublishedEvent; visibleRun: string | undefined }[] = [];
  const runs: string[] = [];

  const publishedRun = async (): Promise<string[]> =>
    (await t.pool.query<{ run_id: string }>('SELECT DISTINCT run_id::text FROM scoring.customer_scores')).rows.map((r) => r.run_id);

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 300, seed: 5, nullFraction: 0 });
    listener = new pg.Client({ connectionString: t.url });
    await listener.connect();
    // What a listener would do: read the scores as soon as it hears of them, on another connection.
    listener.on('notification', (n) => {
      const event = JSON.parse(n.payload ?? '{}') as PublishedEvent;
      const entry: { event: PublishedEvent; visibleRun: string | undefined } = { event, visibleRun: undefined };
      heard.push(entry);
      void t.pool.query<{ run_id: string }>('SELECT run_id::text FROM scoring.customer_scores LIMIT 1').then((r) => (entry.visibleRun = r.rows[0]?.run_id));
    });
    await listener.query(`LISTEN ${publishedChannel}`);
    for (let i = 0; i < 3; i++) {
      // Move some customers between runs, so the runs differ.
      await t.pool.query(`UPDATE customers SET days_since_last_order = days_since_last_order + 30 * ${i + 1} WHERE customer_id % 4 = ${i}`);
      runs.push((await runInProcess(t, { chunkSize: 100, keepRuns: 12 })).runId);
    }
  });
  afterAll(async () => {
    await listener?.end();
    await t.drop();
  });

  it('a LISTEN client hears exactly one notification per publish, after the scores are readable', async () => {
    await waitUntil('the notifications arrived', async () => heard.length === 3 && heard.every((h) => h.visibleRun !== undefined), 5000);
    expect(heard.map((h) => h.event.run_id)).toEqual(runs);
    for (const h of heard) {
      expect(h.visibleRun).toBe(h.event.run_id);
      expect(h.event).toMatchObject({ schema: 'scoring', model_name: 'customer-value', model_version: '1.0.0', rows: 300, kind: 'publish', rollback: false });
      expect(Date.parse(h.event.published_at)).not.toBeNaN();
    }
    expect(heard.map((h) => h.event.previous_run_id)).toEqual([null, runs[0], runs[1]]);
  });

  it('rollback with no run puts the run published before the current one back at once, recorded and announced once', async () => {
    const [first, second, third] = runs as [string, string, string];
    const started = performance.now();
    const event = await rollback({ config: testConfig(t), log: silentLog }, { reason: 'bad source month' });
    expect(performance.now() - started).toBeLessThan(3000);
    expect(event).toMatchObject({ run_id: second, previous_run_id: third, kind: 'rollback', rollback: true, rows: 300 });
    expect(await publishedRun()).toEqual([second]);
    const pub = await t.pool.query(
      'SELECT run_id::text, previous_run_id::text, kind, reason, is_current FROM scoring.published_runs ORDER BY publication_id DESC LIMIT 1',
    );
    expect(pub.rows[0]).toEqual({ run_id: second, previous_run_id: third, kind: 'rollback', reason: 'bad source month', is_current: true });
    await waitUntil('the notifications arrived', async () => heard.length === 4 && heard[3]?.visibleRun !== undefined, 5000);
    expect(heard[3]).toMatchObject({ event: { run_id: second, rollback: true }, visibleRun: second });
    // The changes view now compares with the run rolled back from.
    const changes = await t.pool.query('SELECT DISTINCT run_id::text, previous_run_id::text FROM scoring.customer_score_changes');
    expect(changes.rows).toEqual([{ run_id: second, previous_run_id: third }]);
    // Again: further back, not forth.
    await rollback({ config: testConfig(t), log: silentLog }, {});
    expect(await publishedRun()).toEqual([first]);
  });

  it('refuses (exit 2) a run that is already published, unknown, or of no kept scores', async () => {
    const ctx = { config: testConfig(t), log: silentLog };
    await expect(rollback(ctx, { runId: runs[0] })).rejects.toThrow(/is already published/);
    await expect(rollback(ctx, { runId: '999' })).rejects.toBeInstanceOf(UsageError);
    await expect(rollback(ctx, {})).rejects.toThrow(/no kept run published before run/);
  });

  it('a reader in a long transaction is not blocked, and its next statement sees the run put back', async () => {
    const reader = await t.pool.connect();
    try {
      await reader.query('BEGIN');
      expect((await reader.query('SELECT DISTINCT run_id::text AS r FROM scoring.customer_scores')).rows).toEqual([{ r: runs[0] }]);
      const started = performance.now();
      await rollback({ config: testConfig(t), log: silentLog }, { runId: runs[2] });
      // Well under the 5 s lock timeout: the pointer's UPDATE conflicts with no reader's lock.
      expect(performance.now() - started).toBeLessThan(3000);
      expect((await reader.query('SELECT DISTINCT run_id::text AS r FROM scoring.customer_scores')).rows).toEqual([{ r: runs[2] }]);
      await reader.query('COMMIT');
    } finally {
      reader.release();
    }
  });

  it('retention keeps the published run whatever --keep-runs says, and a later run publishes as usual', async () => {
    await rollback({ config: testConfig(t), log: silentLog }, { runId: runs[0] });
    const c = await t.pool.connect();
    try {
      const ledger = new Ledger('scoring');
      const dropped = await applyRetention({ client: c, ledger, modelName: 'customer-value', keep: 1, log: silentLog });
      expect(dropped.sort()).toEqual([runs[1], runs[2]]);
    } finally {
      c.release();
    }
    expect(await publishedRun()).toEqual([runs[0]]);
    const history = await t.pool.query('SELECT DISTINCT run_id::text AS r FROM scoring.customer_score_history');
    expect(history.rows).toEqual([{ r: runs[0] }]);
    await expect(rollback({ config: testConfig(t), log: silentLog }, { runId: runs[2] })).rejects.toThrow(/is not kept/);
    const inHistory = await t.pool.query('SELECT run_id::text, bool_or(in_history) AS kept FROM scoring.published_runs GROUP BY 1 ORDER BY 1');
    expect(inHistory.rows).toEqual([
      { run_id: runs[0], kept: true },
      { run_id: runs[1], kept: false },
      { run_id: runs[2], kept: false },
    ]);

    const next = await runInProcess(t, { chunkSize: 100, keepRuns: 12 });
    expect(await publishedRun()).toEqual([next.runId]);
    // Its drift is measured against what readers saw when it was scored: the run put back, not the newer one rolled back from.
    expect(next.psiBaselineRunId).toBe(runs[0]);
    const shown = await t.pool.query(`SELECT stats->'drift'->>'baseline_run_id' AS b FROM scoring.score_runs WHERE run_id = $1`, [next.runId]);
    expect(shown.rows).toEqual([{ b: runs[0] }]);
    const pointer = await t.pool.query('SELECT run_id::text, previous_run_id::text FROM scoring.published_run');
    expect(pointer.rows).toEqual([{ run_id: next.runId, previous_run_id: runs[0] }]);
    await waitUntil('the notifications arrived', async () => heard.length === 8, 5000);
    expect(heard.map((h) => h.event.kind)).toEqual(['publish', 'publish', 'publish', 'rollback', 'rollback', 'rollback', 'rollback', 'publish']);
  });
});
