import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { profileColumns } from '../../src/db/columnProfile.js';
import { rollback } from '../../src/publish/rollback.js';
import { independentScores, modelCopy, resumeInProcess, runInProcess, silentLog, testConfig } from '../helpers/run.js';
import { seedWithRejects } from '../helpers/state.js';

/**
 * uuid and text source keys (docs/models.md "Source keys"): the same customers as the seeded bigint
 * table, keyed by a uuid (schema `scoring`) and by a text code in an ICU collation whose order is not
 * the database's byte order (schema `keys_text`). Each schema takes the key type of its first run.
 */
describe('uuid and text customer keys', () => {
  let t: TestDatabase;
  let uuidModel: string;
  let textModel: string;
  const customers = 3000;

  beforeAll(async () => {
    t = await createTestDatabase();
    // Rejects in every chunk: every 150th customer lacks tenure_months (no fill).
    await seedWithRejects(t, customers, 23);
    await t.pool.query(`CREATE TABLE clients_uuid AS SELECT md5(customer_id::text)::uuid AS id, c.* FROM customers c`);
    await t.pool.query(`ALTER TABLE clients_uuid ADD PRIMARY KEY (id)`);
    // Mixed case, an accent, digits of different lengths: en-x-icu orders 'c-10' < 'C-9' < 'É-…', byte order does not.
    await t.pool.query(
      `CREATE TABLE clients_text AS
         SELECT ((ARRAY['c-', 'C-', 'É-', 'e-', 'Z-', 'a-'])[customer_id % 6 + 1] || customer_id)::text COLLATE "en-x-icu" AS code, c.*
           FROM customers c`,
    );
    await t.pool.query(`ALTER TABLE clients_text ADD PRIMARY KEY (code)`);
    uuidModel = await modelCopy((m) => (m.source = { table: 'clients_uuid', key: 'id' }));
    textModel = await modelCopy((m) => (m.source = { table: 'clients_text', key: 'code' }));
    const c = await t.pool.connect();
    try {
      await migrate(c, 'keys_text');
    } finally {
      c.release();
    }
  });
  afterAll(async () => t.drop());

  async function expectEveryCustomerOnce(schema: string, runId: string, modelDir: string): Promise<void> {
    const expected = await independentScores(t.pool, modelDir);
    const { rows } = await t.pool.query<{ k: string; s: number }>(`SELECT customer_id::text k, score s FROM ${schema}.customer_scores`);
    expect(rows).toHaveLength(expected.size);
    let worst = 0;
    for (const r of rows) {
      const e = expected.get(r.k);
      expect(e, `customer ${r.k}`).toBeDefined();
      worst = Math.max(worst, Math.abs((e as number) - r.s));
    }
    expect(worst).toBeLessThan(1e-5);
    const rejects = await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM ${schema}.score_rejects WHERE run_id = $1`, [runId]);
    expect(rows.length + (rejects.rows[0]?.n ?? 0)).toBe(customers);
  }

  async function columnType(schema: string, relation: string): Promise<string> {
    const { rows } = await t.pool.query<{ t: string }>(
      `SELECT format_type(atttypid, atttypmod) t FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'customer_id'`,
      [`${schema}.${relation}`],
    );
    return rows[0]?.t ?? 'missing';
  }

  it('a uuid-keyed source: every customer scored or rejected exactly once, with the score the model predicts, keyed by uuid in every reader view', async () => {
    const r = await runInProcess(t, { modelDir: uuidModel, chunkSize: 400 });
    expect(r.rowsScored + r.rowsRejected).toBe(customers);
    expect(r.rowsRejected).toBe(20);
    await expectEveryCustomerOnce('scoring', r.runId, uuidModel);
    for (const view of ['customer_scores', 'customer_score_history', 'customer_score_changes', 'customer_score_rejects', 'customer_score_reasons'])
      expect(await columnType('scoring', view), view).toBe('uuid');
    // A downstream join on the CRM's key needs no cast.
    const joined = await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM scoring.customer_scores s JOIN clients_uuid c ON c.id = s.customer_id`);
    expect(joined.rows[0]?.n).toBe(r.rowsScored);
    const rejected = await t.pool.query<{ n: number }>(
      `SELECT count(*)::int n FROM scoring.score_rejects j JOIN clients_uuid c ON c.id = j.customer_id WHERE j.run_id = $1 AND c.tenure_months IS NULL`,
      [r.runId],
    );
    expect(rejected.rows[0]?.n).toBe(20);
  });

  it('the views keep their comments and the changes function after the schema took the uuid type', async () => {
    const { rows } = await t.pool.query<{ c: string | null; f: string | null }>(
      `SELECT obj_description('scoring.customer_scores'::regclass, 'pg_class') c,
              pg_get_function_result('scoring.customer_score_changes_since(bigint)'::regprocedure) f`,
    );
    expect(rows[0]?.c).toMatch(/.+/);
    expect(rows[0]?.f).toBe('SETOF scoring.customer_score_changes');
    const second = await runInProcess(t, { modelDir: uuidModel, chunkSize: 700 });
    const changes = await t.pool.query<{ n: number; moved: number }>(
      `SELECT count(*)::int n, count(*) FILTER (WHERE delta <> 0)::int moved FROM scoring.customer_score_changes WHERE NOT is_removed`,
    );
    expect(changes.rows[0]).toEqual({ n: second.rowsScored, moved: 0 });
  });

  it('a text key in a collation whose order is not byte order: chunks planned from the index, each read in full and counted against its plan', async () => {
    const r = await runInProcess(t, { modelDir: textModel, chunkSize: 350 }, 'keys_text');
    expect(r.rowsScored + r.rowsRejected).toBe(customers);
    await expectEveryCustomerOnce('keys_text', r.runId, textModel);
    expect(await columnType('keys_text', 'customer_scores')).toBe('text');
    const chunks = await t.pool.query<{ lo: string | null; hi: string | null; rows: number }>(
      `SELECT key_lo_text lo, key_hi_text hi, rows_scored + rows_rejected AS rows FROM keys_text.score_chunks WHERE run_id = $1 ORDER BY chunk_no`,
      [r.runId],
    );
    expect(chunks.rows).toHaveLength(Math.ceil(customers / 350));
    expect(chunks.rows.slice(0, -1).every((c) => c.rows === 350)).toBe(true);
    // The bounds follow the column's collation: each chunk's rows, counted in it, are what the chunk scored.
    for (const c of chunks.rows) {
      const n = await t.pool.query<{ n: number }>(
        `SELECT count(*)::int n FROM clients_text WHERE ($1::text IS NULL OR code > $1) AND ($2::text IS NULL OR code <= $2)`,
        [c.lo, c.hi],
      );
      expect(n.rows[0]?.n).toBe(c.rows);
    }
    const bytewise = await t.pool.query<{ differs: boolean }>(
      `SELECT array_agg(code ORDER BY code) <> array_agg(code ORDER BY code COLLATE "C") AS differs FROM clients_text`,
    );
    expect(bytewise.rows[0]?.differs).toBe(true);
  });

  it('reasons and a challenger with uuid keys: reasons keyed by uuid, the challenger scores every customer the champion scores', async () => {
    const challenger = await modelCopy((m) => (m.version = '1.0.1'), uuidModel);
    const r = await runInProcess(t, { modelDir: uuidModel, chunkSize: 400, reasons: 2, challengerDir: challenger });
    const reasons = await t.pool.query<{ n: number; customers: number; known: number }>(
      `SELECT count(*)::int n, count(DISTINCT s.customer_id)::int customers, count(c.id)::int known
         FROM scoring.customer_score_reasons s LEFT JOIN clients_uuid c ON c.id = s.customer_id`,
    );
    expect(reasons.rows[0]).toEqual({ n: r.rowsScored * 2, customers: r.rowsScored, known: r.rowsScored * 2 });
    const sibling = await t.pool.query<{ n: number; same: number }>(
      `SELECT count(*)::int n, count(*) FILTER (WHERE abs(d.score - p.score) < 1e-6)::int same
         FROM scoring.score_data d JOIN scoring.customer_scores p USING (customer_id)
        WHERE d.run_id = (SELECT max(run_id) FROM scoring.score_runs WHERE kind = 'challenger')`,
    );
    expect(sibling.rows[0]).toEqual({ n: r.rowsScored, same: r.rowsScored });
    const rejects = await t.pool.query<{ n: number }>(
      `SELECT count(*)::int n FROM scoring.score_rejects j JOIN clients_uuid c ON c.id = j.customer_id
        WHERE j.run_id = (SELECT max(run_id) FROM scoring.score_runs WHERE kind = 'challenger')`,
    );
    expect(rejects.rows[0]?.n).toBe(r.rowsRejected);
  });

  it('an only-new layer with text keys: new customers scored, deleted ones removed, every other score carried', async () => {
    const full = await runInProcess(t, { modelDir: textModel, chunkSize: 500 }, 'keys_text');
    await t.pool.query(`DELETE FROM clients_text WHERE customer_id % 97 = 0`);
    await t.pool.query(
      `INSERT INTO clients_text SELECT 'Ñ-' || c.customer_id, c.* FROM customers c WHERE c.customer_id % 53 = 0 AND c.tenure_months IS NOT NULL`,
    );
    try {
      const layer = await runInProcess(t, { modelDir: textModel, onlyNew: true }, 'keys_text');
      const added = await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM clients_text WHERE code LIKE 'Ñ-%'`);
      expect(layer.rowsScored).toBe(added.rows[0]?.n);
      const expected = await independentScores(t.pool, textModel);
      const { rows } = await t.pool.query<{ k: string; s: number }>(`SELECT customer_id k, score s FROM keys_text.customer_scores`);
      expect(new Set(rows.map((r) => r.k))).toEqual(new Set(expected.keys()));
      for (const r of rows) expect(Math.abs(r.s - (expected.get(r.k) as number))).toBeLessThan(1e-5);
      expect(full.rowsScored).toBeGreaterThan(layer.rowsScored);
    } finally {
      await t.pool.query(`DELETE FROM clients_text WHERE code LIKE 'Ñ-%'`);
      await t.pool.query(
        `INSERT INTO clients_text SELECT ((ARRAY['c-', 'C-', 'É-', 'e-', 'Z-', 'a-'])[customer_id % 6 + 1] || customer_id), c.* FROM customers c WHERE customer_id % 97 = 0`,
      );
    }
  });

  it('a shared run (--workers 2) with uuid keys: every chunk claimed by its bounds, every customer exactly once', async () => {
    const r = await runInProcess(t, { modelDir: uuidModel, chunkSize: 300, workers: 2 });
    expect(r.rowsScored + r.rowsRejected).toBe(customers);
    await expectEveryCustomerOnce('scoring', r.runId, uuidModel);
    const claimed = await t.pool.query<{ pids: number }>(`SELECT count(DISTINCT claim_pid)::int pids FROM scoring.score_chunks WHERE run_id = $1`, [r.runId]);
    expect(claimed.rows[0]?.pids).toBeGreaterThanOrEqual(1);
  });

  it('a run that failed mid-way resumes from its chunk bounds: every customer exactly once', async () => {
    await t.pool.query(`CREATE TABLE public.sj_keys_fail (chunk_no int)`);
    await t.pool.query(`INSERT INTO public.sj_keys_fail VALUES (3)`);
    await t.pool.query(`
      CREATE FUNCTION public.sj_keys_fail() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.status = 'done' AND EXISTS (SELECT 1 FROM public.sj_keys_fail f WHERE f.chunk_no = NEW.chunk_no) THEN
          RAISE EXCEPTION 'test: chunk % refused', NEW.chunk_no;
        END IF;
        RETURN NEW;
      END $$`);
    await t.pool.query(`CREATE TRIGGER sj_keys_fail BEFORE UPDATE ON scoring.score_chunks FOR EACH ROW EXECUTE FUNCTION public.sj_keys_fail()`);
    try {
      const failed = await runInProcess(t, { modelDir: uuidModel, chunkSize: 400, chunkAttempts: 1 }).catch((e: unknown) => e as { exitCode?: number });
      expect(failed).toMatchObject({ exitCode: 1 });
    } finally {
      await t.pool.query(`DROP TRIGGER sj_keys_fail ON scoring.score_chunks`);
    }
    const runId = (await t.pool.query<{ id: string }>('SELECT max(run_id)::text id FROM scoring.score_runs')).rows[0]?.id as string;
    const resumed = await resumeInProcess(t, runId);
    expect(resumed.runId).toBe(runId);
    await expectEveryCustomerOnce('scoring', runId, uuidModel);
  });

  it('rollback puts the earlier uuid-keyed run back; model init drafts from a uuid-keyed table, its primary key as the key', async () => {
    const { rows } = await t.pool.query<{ run_id: string }>(`SELECT run_id::text FROM scoring.published_runs WHERE kind = 'full' ORDER BY publication_id`);
    const earlier = rows.at(-2)?.run_id as string;
    await rollback({ config: testConfig(t), log: silentLog }, { runId: earlier });
    const shown = await t.pool.query<{ run_id: string; n: number }>(`SELECT run_id::text, count(*)::int n FROM scoring.customer_scores GROUP BY 1`);
    expect(shown.rows).toHaveLength(1);
    expect(shown.rows[0]?.run_id).toBe(earlier);
    const c = await t.pool.connect();
    try {
      const profile = await profileColumns(c, 'clients_uuid', { maxCategories: 20 });
      expect(profile.key).toBe('id');
      expect(profile.columns.map((col) => col.name)).not.toContain('id');
    } finally {
      c.release();
    }
  });

  it('refuses (exit 2) a model whose key type is not its schema’s, naming --schema, and options not supported yet with uuid keys', async () => {
    const runs = async () => (await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.score_runs')).rows[0]?.n;
    const before = await runs();
    const bigint = runInProcess(t, { chunkSize: 1000 });
    await expect(bigint).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/schema scoring holds uuid keys.*--schema/) });
    await t.pool.query(`CREATE TABLE clients_outcomes (customer_id uuid, event_time timestamptz, label boolean)`);
    const withOutcomes = await modelCopy((m) => (m.outcomes = { table: 'clients_outcomes', horizon: '90 days' }), uuidModel);
    await expect(runInProcess(t, { modelDir: withOutcomes, minAuc: 0.6 })).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(/^--min-auc is not supported yet with uuid keys/),
    });
    expect(await runs()).toBe(before);
  });

  it('refuses NULL keys of every type, and a key that is not unique, before anything is written', async () => {
    await t.pool.query(`CREATE TABLE clients_nullable (id uuid UNIQUE, LIKE customers)`);
    await t.pool.query(
      `INSERT INTO clients_nullable SELECT CASE WHEN customer_id % 500 = 0 THEN NULL ELSE md5(customer_id::text)::uuid END, c.* FROM customers c`,
    );
    const dir = await modelCopy((m) => (m.source = { table: 'clients_nullable', key: 'id' }));
    await expect(runInProcess(t, { modelDir: dir })).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(/key column id of clients_nullable has \d+ NULL values/),
    });
    await t.pool.query(`CREATE TABLE clients_dup AS SELECT * FROM clients_uuid UNION ALL (SELECT * FROM clients_uuid LIMIT 10)`);
    const dup = await modelCopy((m) => (m.source = { table: 'clients_dup', key: 'id' }));
    await expect(runInProcess(t, { modelDir: dup })).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(/key column id of clients_dup is not unique/),
    });
  });

  it('refuses a key of several columns, naming the workaround (a view with one key column)', async () => {
    const dir = await modelCopy((m) => (m.source = { table: 'clients_uuid', key: 'tenant_id, id' }));
    await expect(runInProcess(t, { modelDir: dir })).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/view with one key column/) });
  });
});
