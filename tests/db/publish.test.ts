import { cp, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import type { RunFailedError } from '../../src/errors.js';
import { loadModel } from '../../src/model/load.js';
import { listRuns } from '../../src/report/runsReport.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { modelCopy, resumeInProcess, runInProcess, shippedModelDir } from '../helpers/run.js';
import { createLogger } from '../../src/log.js';
import { Ledger, type RunParams } from '../../src/ledger/ledger.js';
import { attachRunTable, registerModel } from '../../src/ledger/runAttach.js';
import { publishRun } from '../../src/publish/publish.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const silent = createLogger({ level: 'silent', pretty: false });
const params: RunParams = {
  modelDir: 'm',
  chunkSize: 10,
  dryRun: false,
  keepRuns: 1000,
  maxRejectRatio: 0,
  chunkAttempts: 1,
  backendChoice: 'cpu',
  source: { table: 'customers', key: 'customer_id' },
};

/**
 * One run's life through the ledger, as the job does it: the run row, the plan (which creates the
 * run's table), its scores committed chunk by chunk, then the publish. Every run scores customers
 * 1..rows with the score run_id, so a reader can tell runs apart and see a mix.
 */
async function oneRun(c: pg.ClientBase, ledger: Ledger, rows: number): Promise<string> {
  const runId = await ledger.createRun(c, {
    trigger: 'manual',
    dryRun: false,
    modelName: 'm',
    modelVersion: '1',
    modelSha256: 'x',
    backend: 'cpu',
    params,
    host: 'h',
    pid: 1,
  });
  await c.query('BEGIN');
  await ledger.recordPlan(c, runId, [{ chunkNo: 1, lo: 0n, hi: BigInt(rows) }]);
  await c.query('COMMIT');
  await registerModel(c, ledger, 'm', silent);
  await attachRunTable(c, ledger, runId, silent);
  await c.query(`INSERT INTO ${ledger.runTable(runId)} (customer_id, score) SELECT g, $1 FROM generate_series(1, $2) g`, [Number(runId), rows]);
  // 50 ms of settling after the attach (a real run has seconds): hundreds of publishes stay quick.
  await publishRun({ client: c, ledger, runId, stats: {}, log: silent, settleMs: 50 });
  return runId;
}

describe('complete or nothing under a polling reader', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t.drop());

  it('across 300 publishes, no poll of customer_scores ever sees an empty, partial or mixed run', async () => {
    const rows = 50;
    const writer = await t.pool.connect();
    const ledger = new Ledger('scoring');
    await oneRun(writer, ledger, rows);
    const readers = await Promise.all([t.pool.connect(), t.pool.connect()]);
    // Every poll's result is collected; the assertions run after the readers stopped.
    const polls: { runs: number; n: number; score: number | null; runId: string | null; undated: number; inHistory: number }[] = [];
    let running = true;
    const poll = async (r: pg.PoolClient): Promise<void> => {
      while (running) {
        // One statement, one snapshot: the published rows, their run's finish time, and history's view of that run.
        const { rows: got } = await r.query<{ runs: string; n: string; score: number | null; run_id: string | null; undated: string; in_history: string }>(
          `SELECT count(DISTINCT run_id) AS runs, count(*) AS n, max(score) AS score, max(run_id)::text AS run_id,
                  count(*) FILTER (WHERE scored_at IS NULL) AS undated,
                  (SELECT count(*) FROM scoring.customer_score_history h WHERE h.run_id = (SELECT run_id FROM scoring.published_run WHERE model_name = 'm')) AS in_history
             FROM scoring.customer_scores`,
        );
        const g = got[0] as { runs: string; n: string; score: number | null; run_id: string | null; undated: string; in_history: string };
        polls.push({ runs: Number(g.runs), n: Number(g.n), score: g.score, runId: g.run_id, undated: Number(g.undated), inHistory: Number(g.in_history) });
      }
    };
    const pollers = readers.map(poll);
    try {
      for (let i = 0; i < 300; i++) await oneRun(writer, ledger, rows);
    } finally {
      running = false;
      await Promise.allSettled(pollers);
      readers.forEach((r) => r.release());
      writer.release();
    }
    expect(polls.length).toBeGreaterThan(300);
    // A publish split in two transactions would show the new pointer with its run not yet finished (no scored_at, not in history).
    const bad = polls.filter((p) => p.runs !== 1 || p.n !== rows || p.score !== Number(p.runId) || p.undated !== 0 || p.inHistory !== rows);
    expect(bad.slice(0, 5), `${bad.length} of ${polls.length} polls saw an empty, partial or mixed view`).toEqual([]);
  });
});

async function tables(t: TestDatabase): Promise<string[]> {
  const { rows } = await t.pool.query<{ id: string }>(
    `SELECT substr(tablename, 12) AS id FROM pg_tables WHERE schemaname = 'scoring' AND tablename LIKE 'score\\_data\\_%' ORDER BY substr(tablename, 12)::bigint`,
  );
  return rows.map((r) => r.id);
}

async function runsList(t: TestDatabase): ReturnType<typeof listRuns> {
  const c = await t.pool.connect();
  try {
    return await listRuns(c, 'scoring', { limit: 20 });
  } finally {
    c.release();
  }
}

async function historyRuns(t: TestDatabase): Promise<string[]> {
  const { rows } = await t.pool.query<{ id: string }>('SELECT DISTINCT run_id::text AS id FROM scoring.customer_score_history ORDER BY 1');
  return rows.map((r) => r.id).sort((a, b) => Number(a) - Number(b));
}

/** A run the reject gate stops (one customer without a tenure, no fill, and --max-reject-ratio 0). */
async function gateStoppedRun(t: TestDatabase, keepRuns = 12): Promise<string> {
  const err = await runInProcess(t, { maxRejectRatio: 0, keepRuns }).then(
    () => undefined,
    (e: unknown) => e as RunFailedError,
  );
  expect(err?.message).toMatch(/--max-reject-ratio/);
  return (err as RunFailedError).runId as string;
}

describe('retention of runs that were never published', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 300, seed: 4, nullFraction: 0 });
    await t.pool.query('UPDATE customers SET tenure_months = NULL WHERE customer_id = (SELECT min(customer_id) FROM customers)');
  });
  afterAll(async () => t.drop());

  it('a gate-stopped run keeps its scores (for publish --force) until a later run is published; runs then stops offering it', async () => {
    const first = await runInProcess(t, { maxRejectRatio: 0.5 });
    const stopped = await gateStoppedRun(t);
    expect(await tables(t)).toEqual([first.runId, stopped]);
    const offered = (await runsList(t)).find((r) => r.run_id === stopped);
    expect(offered?.resume_command).toBe(
      `scorejob run once the data is fixed, or scorejob publish ${stopped} --force --reason "<what you checked>" after review`,
    );
    const later = await runInProcess(t, { maxRejectRatio: 0.5 });
    expect(await tables(t)).toEqual([first.runId, later.runId]);
    expect(await historyRuns(t)).toEqual([first.runId, later.runId]);
    const after = (await runsList(t)).find((r) => r.run_id === stopped);
    expect(after?.resume_command).toMatch(/^scorejob run \(a new run/);
    // The advice holds: resume and publish --force both refuse it, saying to start a new run.
    await expect(resumeInProcess(t, stopped)).rejects.toThrow(/superseded by run|start a new run/);
  });

  it('at most --keep-runs unpublished tables are kept, the newest; the published run whatever --keep-runs says', async () => {
    const before = await tables(t);
    const published = before.at(-1) as string;
    const stopped = [await gateStoppedRun(t, 2), await gateStoppedRun(t, 2), await gateStoppedRun(t, 2), await gateStoppedRun(t, 2)];
    // Each run, when it starts, drops unpublished tables beyond the newest two: the first one went.
    expect(await tables(t)).toEqual([...before, ...stopped.slice(1)]);
    await gateStoppedRun(t, 0);
    expect(await tables(t)).toEqual([published, (await lastRun(t)) as string]);
    expect(await historyRuns(t)).toContain(published);
  });
});

async function lastRun(t: TestDatabase): Promise<string | undefined> {
  const { rows } = await t.pool.query<{ id: string }>('SELECT max(run_id)::text AS id FROM scoring.score_runs');
  return rows[0]?.id;
}

describe('advice that works when followed', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 400, seed: 8, nullFraction: 0 });
  });
  afterAll(async () => t.drop());

  it('duplicate keys through a view: the run fails on the chunk saying so; once the view is fixed, resume finishes it, every customer once', async () => {
    await t.pool.query(
      `CREATE VIEW customers_v AS SELECT * FROM customers UNION ALL SELECT * FROM customers WHERE customer_id = (SELECT max(customer_id) FROM customers)`,
    );
    const dir = await modelCopy((m) => (m.source.table = 'public.customers_v'));
    const err = await runInProcess(t, { modelDir: dir, chunkSize: 100 }).then(
      () => undefined,
      (e: unknown) => e as RunFailedError,
    );
    expect(err?.message).toMatch(/the source key is not unique.*fix the source key.*resume it with `scorejob resume \d+`/);
    const runId = err?.runId as string;
    const chunks = await t.pool.query<{ status: string; n: string }>(
      'SELECT status, count(*) n FROM scoring.score_chunks WHERE run_id = $1 GROUP BY 1 ORDER BY 1',
      [runId],
    );
    expect(chunks.rows).toEqual([
      { status: 'done', n: '3' },
      { status: 'pending', n: '1' },
    ]);
    await t.pool.query('CREATE OR REPLACE VIEW customers_v AS SELECT * FROM customers');
    const resumed = await resumeInProcess(t, runId);
    expect(resumed.rowsScored).toBe(400);
    const view = await t.pool.query<{ n: string; d: string }>('SELECT count(*) n, count(DISTINCT customer_id) d FROM scoring.customer_scores');
    expect(view.rows[0]).toEqual({ n: '400', d: '400' });
  });
});

describe('a schema of version 1 with data, migrated', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    await seedCustomers(t.pool, { customers: 250, seed: 6, nullFraction: 0 });
  });
  afterAll(async () => t.drop());

  it('keeps its published run and history for readers, and a run planned before (table not attached, no key) resumes and publishes', async () => {
    const v1 = await mkdtemp(join(tmpdir(), 'sj-sql-v1-'));
    await cp(new URL('../../sql/001_init.sql', import.meta.url), join(v1, '001_init.sql'));
    const c = await t.pool.connect();
    try {
      await migrate(c, 'scoring', pathToFileURL(`${v1}/`));
      const sha = (await loadModel(shippedModelDir, { backend: 'cpu' })).sha256;
      const ledger = new Ledger('scoring');
      const v1Params = { ...params, modelDir: shippedModelDir, chunkSize: 100, maxRejectRatio: 0.01, chunkAttempts: 3, backendChoice: 'auto' };
      // A published run as version 1 left it: its table attached at publish, the pointer on it.
      const old = await ledger.createRun(c, {
        trigger: 'manual',
        dryRun: false,
        modelName: 'customer-value',
        modelVersion: '0.9',
        modelSha256: sha,
        backend: 'cpu',
        params: v1Params,
        host: 'h',
        pid: 1,
      });
      await c.query(`CREATE TABLE scoring.score_data_${old} (LIKE scoring.score_data INCLUDING DEFAULTS)`);
      await c.query(`INSERT INTO scoring.score_data_${old} SELECT ${old}, customer_id, 0.5 FROM customers`);
      await c.query(`ALTER TABLE scoring.score_data_${old} ADD PRIMARY KEY (run_id, customer_id)`);
      await c.query(`ALTER TABLE scoring.score_data ATTACH PARTITION scoring.score_data_${old} FOR VALUES IN (${old})`);
      await c.query(`UPDATE scoring.score_runs SET status = 'succeeded', finished_at = now(), published_at = now() WHERE run_id = $1`, [old]);
      await c.query(`UPDATE scoring.published_run SET run_id = $1, published_at = now()`, [old]);
      // An interrupted run as version 1 left it: planned, two chunks done, its table neither keyed nor attached.
      const cut = await ledger.createRun(c, {
        trigger: 'manual',
        dryRun: false,
        modelName: 'customer-value',
        modelVersion: '1.0.0',
        modelSha256: sha,
        backend: 'cpu',
        params: v1Params,
        host: 'h',
        pid: 1,
      });
      const keys = (await c.query<{ k: string }>('SELECT customer_id::text k FROM customers ORDER BY 1')).rows.map((r) => BigInt(r.k));
      const bounds = [keys[0]! - 1n, keys[99]!, keys[199]!, keys[249]!];
      await c.query(
        `INSERT INTO scoring.score_chunks (run_id, chunk_no, key_lo, key_hi, status) VALUES ($1, 1, $2, $3, 'done'), ($1, 2, $3, $4, 'pending'), ($1, 3, $4, $5, 'pending')`,
        [cut, ...bounds.map(String)],
      );
      await c.query(`UPDATE scoring.score_runs SET chunks_total = 3, status = 'interrupted', rows_scored = 100 WHERE run_id = $1`, [cut]);
      await c.query(`CREATE TABLE scoring.score_data_${cut} (LIKE scoring.score_data INCLUDING DEFAULTS, CHECK (run_id = ${cut}))`);
      await c.query(`ALTER TABLE scoring.score_data_${cut} ALTER COLUMN run_id SET DEFAULT ${cut}`);
      await c.query(`INSERT INTO scoring.score_data_${cut} (customer_id, score) SELECT customer_id, 0.25 FROM customers WHERE customer_id <= $1`, [
        String(bounds[1]),
      ]);

      // Readers poll customer_scores while the schema is migrated: every poll sees the published run, whole.
      const reader = await t.pool.connect();
      const polls: { n: number; run_id: string | null }[] = [];
      let polling = true;
      const poll = (async () => {
        while (polling) {
          const { rows } = await reader.query<{ n: string; run_id: string | null }>('SELECT count(*) n, max(run_id)::text run_id FROM scoring.customer_scores');
          polls.push({ n: Number(rows[0]?.n), run_id: rows[0]?.run_id ?? null });
        }
      })();
      await new Promise((r) => setTimeout(r, 50));
      let steps: Awaited<ReturnType<typeof migrate>>;
      try {
        steps = await migrate(c, 'scoring');
        await new Promise((r) => setTimeout(r, 50));
      } finally {
        polling = false;
        await poll.catch(() => undefined);
        reader.release();
      }
      expect(polls.length).toBeGreaterThan(1);
      expect(polls.filter((p) => p.n !== 250 || p.run_id !== old)).toEqual([]);
      expect(steps.filter((s) => s.outcome === 'applied').map((s) => s.version)).toContain(2);
      expect(await historyRuns(t)).toEqual([old]);
      const scores = await c.query<{ n: string; run_id: string }>('SELECT count(*) n, max(run_id)::text run_id FROM scoring.customer_scores');
      expect(scores.rows[0]).toEqual({ n: '250', run_id: old });
      const named = await c.query<{ model_name: string }>('SELECT DISTINCT model_name FROM scoring.customer_scores');
      expect(named.rows).toEqual([{ model_name: 'customer-value' }]);

      const resumed = await resumeInProcess(t, cut);
      expect(resumed.rowsScored).toBe(250);
      const after = await c.query<{ n: string; run_id: string }>('SELECT count(*) n, max(run_id)::text run_id FROM scoring.customer_scores');
      expect(after.rows[0]).toEqual({ n: '250', run_id: cut });
      expect(await historyRuns(t)).toEqual([old, cut]);
    } finally {
      c.release();
    }
  });
});
