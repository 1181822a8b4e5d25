import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { publishChallenger } from '../../src/job/challengerPublish.js';
import { rollback } from '../../src/job/rollback.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, runInProcess, silentLog, testConfig } from '../helpers/run.js';
import { Reference, ReferenceScorer, type RefRun } from '../model/reference.js';

/**
 * Model-based tests: random sequences of full runs, only-new runs, source inserts / updates / deletes /
 * new rejects, reasons on and off, challenger runs and their publication, rollbacks and --keep-runs 1-3,
 * each step run in-process against real PostgreSQL, and after every step every reader view checked
 * against the reference (tests/model/reference.ts). `npm test` runs a few seeded sequences;
 * `npm run test:model` runs SCOREJOB_MODEL_SEQUENCES (200) of them.
 */
const sequences = Number(process.env.SCOREJOB_MODEL_SEQUENCES ?? 2);
const seed = Number(process.env.SCOREJOB_MODEL_SEED ?? 20261207);

interface Real {
  t: TestDatabase;
  model: string;
  challenger: string;
  scorer: ReferenceScorer;
  challengerScorer: ReferenceScorer;
}
type Cmd = fc.AsyncCommand<Reference, Real>;
const tol = 2e-5;
const run = (r: Real, over: Record<string, unknown>) => runInProcess(r.t, { modelDir: r.model, chunkSize: 16, maxRejectRatio: 1, replacePromoted: true, ...over });
const sourceKeys = async (r: Real) => new Set((await r.t.pool.query<{ k: string }>('SELECT customer_id::text k FROM src')).rows.map((x) => x.k));

function fullRunOf(id: string, scores: Map<string, number>, reasons: boolean, step: number): RefRun {
  return { id, kind: 'full', scores, scoredBy: new Map([...scores.keys()].map((k) => [k, id])), reasons, step, rowsScored: scores.size };
}

class FullRun implements Cmd {
  constructor(readonly reasons: boolean, readonly keep: number, readonly withChallenger: boolean) {}
  check = () => true;
  async run(m: Reference, r: Real): Promise<void> {
    const step = ++m.step;
    const expected = await r.scorer.scoreTable(r.t.pool, 'src');
    const res = await run(r, { reasons: this.reasons ? 2 : undefined, keepRuns: this.keep, challengerDir: this.withChallenger ? r.challenger : undefined });
    m.runs.set(res.runId, fullRunOf(res.runId, expected, this.reasons, step));
    m.publish(m.runs.get(res.runId)!, 'full');
    m.pendingChallenger = undefined;
    m.lastKeep = this.keep;
    if (this.withChallenger) {
      const id = (await r.t.pool.query<{ id: string }>('SELECT run_id::text id FROM scoring.score_runs WHERE champion_run_id = $1', [res.runId])).rows[0]!.id;
      m.runs.set(id, { ...fullRunOf(id, await r.challengerScorer.scoreTable(r.t.pool, 'src'), false, step), kind: 'challenger' });
      m.pendingChallenger = id;
    }
    m.retain(this.keep);
    await checkViews(m, r);
  }
  toString = () => `full(reasons=${this.reasons}, keep=${this.keep}${this.withChallenger ? ', challenger' : ''})`;
}

class OnlyNewRun implements Cmd {
  constructor(readonly reasons: boolean, readonly keep: number) {}
  check = (m: Readonly<Reference>) => m.current !== undefined && m.runs.get(m.current)?.kind !== 'challenger';
  async run(m: Reference, r: Real): Promise<void> {
    const step = ++m.step;
    const fresh = await r.scorer.scoreTable(r.t.pool, 'src');
    const res = await run(r, { reasons: this.reasons ? 2 : undefined, keepRuns: this.keep, onlyNew: true });
    const layer = m.layer(res.runId, fresh, await sourceKeys(r), this.reasons, step);
    expect(res.rowsScored, 'rows the only-new run scored').toBe(layer.rowsScored);
    m.runs.set(res.runId, layer);
    m.publish(layer, 'only-new');
    m.pendingChallenger = undefined;
    m.lastKeep = this.keep;
    m.retain(this.keep);
    await checkViews(m, r);
  }
  toString = () => `onlyNew(reasons=${this.reasons}, keep=${this.keep})`;
}

/** A source change between runs: insert (from the template), update, delete, or a new reject (a NULL with no fill). */
class SourceChange implements Cmd {
  constructor(readonly what: 'insert' | 'update' | 'delete' | 'reject', readonly n: number, readonly offset: number) {}
  check = () => true;
  async run(m: Reference, r: Real): Promise<void> {
    const step = ++m.step;
    const pick = `SELECT customer_id FROM src ORDER BY customer_id OFFSET ${this.offset} LIMIT ${this.n}`;
    let keys: string[] = [];
    if (this.what === 'insert') {
      const res = await r.t.pool.query<{ k: string }>(
        `INSERT INTO src SELECT c.*, clock_timestamp() FROM customers c WHERE c.customer_id NOT IN (SELECT customer_id FROM src) ORDER BY c.customer_id LIMIT ${this.n} RETURNING customer_id::text k`,
      );
      keys = res.rows.map((x) => x.k);
    } else if (this.what === 'delete') {
      await r.t.pool.query(`DELETE FROM src WHERE customer_id IN (${pick})`);
    } else {
      const set = this.what === 'update' ? 'orders_12m = orders_12m + 3' : 'orders_12m = NULL';
      keys = (await r.t.pool.query<{ k: string }>(`UPDATE src SET ${set}, updated_at = clock_timestamp() WHERE customer_id IN (${pick}) RETURNING customer_id::text k`)).rows.map((x) => x.k);
    }
    for (const k of keys) m.changedAt.set(k, step);
  }
  toString = () => `${this.what}(${this.n} at ${this.offset})`;
}

class PublishChallenger implements Cmd {
  check = (m: Readonly<Reference>) => m.pendingChallenger !== undefined;
  async run(m: Reference, r: Real): Promise<void> {
    const id = m.pendingChallenger as string;
    const champion = m.current as string;
    await publishChallenger({ config: testConfig(r.t), log: silentLog }, champion, { force: true, reason: 'model-based test' });
    m.publish(m.runs.get(id)!, 'challenger');
    m.pendingChallenger = undefined;
    m.retain(m.lastKeep);
    await checkViews(m, r);
  }
  toString = () => 'publishChallenger';
}

class Rollback implements Cmd {
  constructor(readonly pick: number) {}
  targets = (m: Readonly<Reference>) =>
    [...new Set(m.publications.map((p) => p.run))].filter((id) => id !== m.current && !m.maybeDropped.has(id) && m.runs.get(id)!.scores.size > 0);
  check = (m: Readonly<Reference>) => this.targets(m).length > 0;
  async run(m: Reference, r: Real): Promise<void> {
    const targets = this.targets(m);
    const target = targets[this.pick % targets.length]!;
    await rollback({ config: testConfig(r.t), log: silentLog }, { runId: target });
    m.publish(m.runs.get(target)!, 'rollback');
    m.pendingChallenger = undefined;
    await checkViews(m, r);
  }
  toString = () => `rollback(${this.pick})`;
}

const near = (a: number | null | undefined, b: number | undefined) => a !== null && a !== undefined && b !== undefined && Math.abs(a - b) < tol;

/** Every reader view against the reference. */
async function checkViews(m: Reference, r: Real): Promise<void> {
  const cur = m.runs.get(m.current as string)!;
  const q = async <T extends Record<string, unknown>>(sql: string) => (await r.t.pool.query<T>(sql)).rows;
  // customer_scores: the current run's customers, their scores, and the run that computed each.
  const scores = await q<{ k: string; score: number; run_id: string }>('SELECT customer_id::text k, score, run_id::text FROM scoring.customer_scores');
  expect(new Set(scores.map((s) => s.k)), 'customer_scores customers').toEqual(new Set(cur.scores.keys()));
  for (const s of scores) {
    expect(near(s.score, cur.scores.get(s.k)), `customer_scores score of ${s.k}: ${s.score} vs ${cur.scores.get(s.k)}`).toBe(true);
    expect(s.run_id, `customer_scores run of ${s.k}`).toBe(cur.scoredBy.get(s.k));
  }
  // customer_score_changes: the current customers, plus those the comparison run had and the current has not.
  const cmpId = m.compare;
  const cmp = cmpId === null ? undefined : m.runs.get(cmpId);
  const changes = await q<{ k: string; score: number | null; previous_score: number | null; is_new: boolean; is_removed: boolean; previous_run_id: string | null }>(
    'SELECT customer_id::text k, score, previous_score, is_new, is_removed, previous_run_id::text FROM scoring.customer_score_changes',
  );
  const present = changes.filter((c) => !c.is_removed);
  expect(new Set(present.map((c) => c.k)), 'customer_score_changes customers').toEqual(new Set(cur.scores.keys()));
  expect(present.length, 'customer_score_changes: one row per customer').toBe(cur.scores.size);
  for (const c of changes) expect(c.previous_run_id, 'customer_score_changes.previous_run_id').toBe(cmpId);
  if (cmp === undefined) {
    expect(changes.every((c) => c.is_new && !c.is_removed && c.previous_score === null), 'no comparison run: everybody new').toBe(true);
  } else if (m.kept(cmp.id)) {
    for (const c of present) {
      expect(c.is_new, `is_new of ${c.k}`).toBe(!cmp.scores.has(c.k));
      if (cmp.scores.has(c.k)) expect(near(c.previous_score, cmp.scores.get(c.k)), `previous_score of ${c.k}`).toBe(true);
    }
    const removed = [...cmp.scores.keys()].filter((k) => !cur.scores.has(k));
    expect(new Set(changes.filter((c) => c.is_removed).map((c) => c.k)), 'removed customers').toEqual(new Set(removed));
    for (const c of changes.filter((x) => x.is_removed)) expect(c.score === null && near(c.previous_score, cmp.scores.get(c.k)), `removed ${c.k}`).toBe(true);
  }
  // customer_score_reasons: 2 per customer whose scoring run had reasons (and is still kept), from that run.
  const reasons = await q<{ k: string; n: string; run_id: string }>('SELECT customer_id::text k, count(*) n, min(run_id)::text run_id FROM scoring.customer_score_reasons GROUP BY 1');
  const byKey = new Map(reasons.map((x) => [x.k, x]));
  let withReasons = 0;
  let certain = true;
  for (const [k, by] of cur.scoredBy) {
    const scoredBy = m.runs.get(by)!;
    if (!m.kept(by)) {
      certain = false;
      continue;
    }
    if (scoredBy.reasons) withReasons++;
    expect(byKey.get(k)?.n, `reasons of ${k} (scored by run ${by}, reasons ${scoredBy.reasons})`).toBe(scoredBy.reasons ? '2' : undefined);
    if (scoredBy.reasons) expect(byKey.get(k)?.run_id).toBe(by);
  }
  // published_runs: the current publication's kind, counts and comparison run.
  const pub = (await q<{ kind: string; run_id: string; rows_published: string; rows_with_reasons: string; compare_run_id: string | null; is_current: boolean }>(
    'SELECT kind, run_id::text, rows_published::text, rows_with_reasons::text, compare_run_id::text, is_current FROM scoring.published_runs ORDER BY publication_id DESC LIMIT 1',
  ))[0]!;
  const last = m.publications.at(-1)!;
  expect({ kind: pub.kind, run: pub.run_id, rows: Number(pub.rows_published), compare: pub.compare_run_id, current: pub.is_current }, 'published_runs').toEqual({
    kind: last.kind,
    run: cur.id,
    rows: cur.scores.size,
    compare: last.compare,
    current: true,
  });
  if (certain) expect(Number(pub.rows_with_reasons), 'published_runs.rows_with_reasons').toBe(withReasons);
}

const commands = [
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 3 }), fc.boolean()).map(([a, k, c]) => new FullRun(a, k, c) as Cmd),
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 3 })).map(([a, k]) => new OnlyNewRun(a, k) as Cmd),
  fc.tuple(fc.constantFrom('insert', 'update', 'delete', 'reject') as fc.Arbitrary<'insert' | 'update' | 'delete' | 'reject'>, fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 40 })).map(
    ([w, n, o]) => new SourceChange(w, n, o) as Cmd,
  ),
  fc.constant(new PublishChallenger() as Cmd),
  fc.integer({ min: 0, max: 5 }).map((p) => new Rollback(p) as Cmd),
];

describe('every reader view matches the reference after any sequence of operations', () => {
  let t: TestDatabase;
  let real: Real;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    await seedCustomers(t.pool, { customers: 80, seed: 7, nullFraction: 0 });
    const source = { table: 'src', key: 'customer_id', updated_column: 'updated_at' };
    const model = await modelCopy((mf) => (mf.source = source));
    const challenger = await modelCopy((mf) => {
      mf.name = 'churn2c';
      mf.version = '2.0.0';
      mf.source = source;
      (mf.features as { column: string; mean?: number }[])[1]!.mean! += 1;
    });
    real = { t, model, challenger, scorer: await ReferenceScorer.load(model), challengerScorer: await ReferenceScorer.load(challenger) };
  });
  afterAll(async () => t?.drop());

  it(`${sequences} seeded sequences of 8+ steps (seed ${seed})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 10 }).filter((c) => [...c].length >= 8), async (cmds) => {
        await t.pool.query('DROP SCHEMA IF EXISTS scoring CASCADE; DROP TABLE IF EXISTS src');
        await t.pool.query(`CREATE TABLE src AS SELECT c.*, now() AS updated_at FROM customers c ORDER BY customer_id LIMIT 50`);
        await t.pool.query('ALTER TABLE src ADD PRIMARY KEY (customer_id)');
        const c = await t.pool.connect();
        try {
          await migrate(c, 'scoring');
        } finally {
          c.release();
        }
        const m = new Reference();
        // Every sequence starts from a full run: only-new, rollback and challenger steps need a published run.
        await new FullRun(false, 3, false).run(m, real);
        await fc.asyncModelRun(() => ({ model: m, real }), cmds);
      }),
      { numRuns: sequences, seed, endOnFailure: true, verbose: 1 },
    );
  }, 3_600_000);
});
