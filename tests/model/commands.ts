import fc from 'fast-check';
import { expect } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { publishChallenger } from '../../src/features/challenger/challengerPublish.js';
import { retireModel } from '../../src/publish/retire.js';
import { rollback } from '../../src/publish/rollback.js';
import { resumeRun, startRun, type RunContext, type RunResult } from '../../src/run/runJob.js';
import { joinRun, type WorkResult } from '../../src/workers/worker.js';
import { migrate } from '../../src/db/migrate.js';
import type { RunOptions } from '../../src/config.js';
import type { TestDatabase } from '../helpers/db.js';
import { holdChunk } from '../helpers/holdChunk.js';
import { waitUntil } from '../helpers/waitUntil.js';
import { modelCopy, runOptions, silentLog, testConfig } from '../helpers/run.js';
import { Reference, ReferenceScorer, type RefRun } from './reference.js';
import { stopRunChildren, takeRunChild } from './killChild.js';
import { createTemplateDb, type TemplateDb } from './templateDb.js';
import { createSourceSql, sourceKey, sourceRest, type SourceKeyType } from './sourceKeys.js';

/**
 * The operations of the model-based tests (tests/db/composeModel.test.ts) and the check after each.
 * Model-based tests: random sequences of full runs, only-new runs, source inserts / updates / deletes /
 * new rejects, reasons on and off, challenger runs and their publication, rollbacks and --keep-runs 1-3,
 * each step run in-process against real PostgreSQL, and after every step every reader view checked
 * against the reference (tests/model/reference.ts). `npm test` runs a few seeded sequences;
 * `npm run test:model` runs SCOREJOB_MODEL_SEQUENCES (200) of them.
 */

export interface Real {
  t: TestDatabase;
  model: string;
  challenger: string;
  scorer: ReferenceScorer;
  challengerScorer: ReferenceScorer;
  /** The type of src's key (tests/model/sourceKeys.ts). */
  keys: SourceKeyType;
}
type Cmd = fc.AsyncCommand<Reference, Real>;
const tol = 2e-5;
/**
 * The library's run, as `scorejob run` calls it. No reader runs beside a step (the views are checked after
 * it), so the publish need not wait for readers planned around the attach (src/publish/publish.ts).
 */
const context = (r: Real): RunContext => ({ config: testConfig(r.t), log: silentLog, stop: { requested: undefined }, publishSettleMs: 0 });
const run = (r: Real, over: Partial<RunOptions>) =>
  startRun(context(r), runOptions({ modelDir: r.model, chunkSize: 16, maxRejectRatio: 1, replacePromoted: true, ...over }));
const sourceKeys = async (r: Real) => new Set((await r.t.pool.query<{ k: string }>('SELECT customer_id::text k FROM src')).rows.map((x) => x.k));

function fullRunOf(id: string, scores: Map<string, number>, reasons: boolean, step: number): RefRun {
  return { id, kind: 'full', scores, scoredBy: new Map([...scores.keys()].map((k) => [k, id])), reasons, step, rowsScored: scores.size };
}

/** A full run: in-process, or shared by 2 workers, or killed (kill -9, in a subprocess) inside its second chunk and resumed. */
export class FullRun implements Cmd {
  constructor(
    readonly reasons: boolean,
    readonly keep: number,
    readonly withChallenger: boolean,
    readonly how: 'plain' | 'workers' | 'kill' = 'plain',
  ) {}
  check = () => true;
  async run(m: Reference, r: Real): Promise<void> {
    const step = ++m.step;
    m.executed++;
    const expected = await r.scorer.scoreTable(r.t.pool, 'src');
    const opts = { reasons: this.reasons ? 2 : undefined, keepRuns: this.keep, challengerDir: this.withChallenger ? r.challenger : undefined };
    // A kill needs a second chunk to hold the run in (chunks of 16).
    const kill = this.how === 'kill' && (await sourceKeys(r)).size > 40;
    const res = kill ? await killedAndResumed(r, opts) : this.how === 'workers' ? await sharedRun(r, opts) : await run(r, opts);
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
  toString = () => `full(reasons=${this.reasons}, keep=${this.keep}${this.withChallenger ? ', challenger' : ''}, ${this.how})`;
}

/**
 * A shared run (`--workers`) whose second worker joins in-process, as `scorejob work --run ID` does from
 * another machine. The coordinator is held in its first chunk's transaction until the worker is claiming
 * beside it (its own reader session is open), so the worker always joins a running run.
 */
export async function sharedRun(r: Real, opts: Partial<RunOptions>): Promise<RunResult & { joined: WorkResult }> {
  const hold = await holdChunk(r.t, 1);
  const sessions = async (role: string) =>
    (
      await r.t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, [
        `scorejob ${role}`,
      ])
    ).rows[0]!.n;
  try {
    const coordinator = run(r, { ...opts, workers: 1 });
    coordinator.catch(() => undefined);
    await hold.reached();
    const runId = (
      await r.t.pool.query<{ id: string }>(`SELECT max(run_id)::text id FROM scoring.score_runs WHERE status = 'running' AND champion_run_id IS NULL`)
    ).rows[0]!.id;
    const joined = joinRun(context(r), { runId, waitS: 0, modelDir: undefined, backend: undefined });
    joined.catch(() => undefined);
    await waitUntil('the second worker reads beside the coordinator', async () => (await sessions('reader')) >= 2, 30_000);
    await hold.release();
    const [res, worker] = await Promise.all([coordinator, joined]);
    return { ...res, joined: worker };
  } finally {
    await hold.release();
  }
}

/**
 * `scorejob run` in a child process (started ahead: tests/model/killChild.ts), killed with SIGKILL while its
 * second chunk's transaction is open, then resumed in-process.
 */
async function killedAndResumed(
  r: Real,
  opts: { reasons: number | undefined; keepRuns: number; challengerDir: string | undefined },
): Promise<{ runId: string }> {
  const hold = await holdChunk(r.t, 2);
  const child = await takeRunChild(r.model);
  try {
    child.run(r.t.url, {
      chunkSize: 16,
      keepRuns: opts.keepRuns,
      maxRejectRatio: 1,
      replacePromoted: true,
      reasons: opts.reasons,
      challengerDir: opts.challengerDir,
    });
    await Promise.race([hold.reached(), child.ended.then((how) => Promise.reject(new Error(`the run to be killed ended before its second chunk: ${how}`)))]);
    await child.kill();
    await hold.endJobSessions();
  } finally {
    await child.kill();
    await hold.release();
  }
  // The killed holder's grace (src/ledger/lockLiveness.ts) is over, as if the test had waited it out: the
  // wait itself is the lock tests' subject (tests/cli/lock.test.ts), the resumed run's views are this one's.
  await r.t.pool.query(`UPDATE scoring.run_locks SET heartbeat_at = heartbeat_at - interval '1 minute' WHERE token IS NOT NULL`);
  const runId = (await r.t.pool.query<{ id: string }>(`SELECT max(run_id)::text id FROM scoring.score_runs WHERE champion_run_id IS NULL`)).rows[0]!.id;
  return resumeRun(context(r), runId);
}

export class OnlyNewRun implements Cmd {
  constructor(
    readonly reasons: boolean,
    readonly keep: number,
  ) {}
  check = (m: Readonly<Reference>) => m.current !== undefined && m.runs.get(m.current)?.kind !== 'challenger';
  async run(m: Reference, r: Real): Promise<void> {
    const step = ++m.step;
    m.executed++;
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
export class SourceChange implements Cmd {
  constructor(
    readonly what: 'insert' | 'update' | 'delete' | 'reject',
    readonly n: number,
    readonly offset: number,
  ) {}
  check = () => true;
  async run(m: Reference, r: Real): Promise<void> {
    const step = ++m.step;
    m.executed++;
    const pick = `SELECT customer_id FROM src ORDER BY customer_id OFFSET ${this.offset} LIMIT ${this.n}`;
    let keys: string[] = [];
    if (this.what === 'insert') {
      const res = await r.t.pool.query<{ k: string }>(
        `INSERT INTO src SELECT ${sourceKey(r.keys, 'c.customer_id')}, ${sourceRest}, clock_timestamp() FROM customers c
          WHERE ${sourceKey(r.keys, 'c.customer_id')} NOT IN (SELECT customer_id FROM src) ORDER BY c.customer_id LIMIT ${this.n} RETURNING customer_id::text k`,
      );
      keys = res.rows.map((x) => x.k);
    } else if (this.what === 'delete') {
      await r.t.pool.query(`DELETE FROM src WHERE customer_id IN (${pick})`);
    } else {
      const set = this.what === 'update' ? 'orders_12m = orders_12m + 3' : 'orders_12m = NULL';
      keys = (
        await r.t.pool.query<{ k: string }>(
          `UPDATE src SET ${set}, updated_at = clock_timestamp() WHERE customer_id IN (${pick}) RETURNING customer_id::text k`,
        )
      ).rows.map((x) => x.k);
    }
    for (const k of keys) m.changedAt.set(k, step);
  }
  toString = () => `${this.what}(${this.n} at ${this.offset})`;
}

/** `publish <run> --challenger --force`: the challenger of the last run, or of a champion run with a challenger started for it. */
export class PublishChallenger implements Cmd {
  check = () => true;
  async run(m: Reference, r: Real): Promise<void> {
    if (m.pendingChallenger === undefined) await new FullRun(false, m.lastKeep, true).run(m, r);
    m.executed++;
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

export class Rollback implements Cmd {
  constructor(readonly pick: number) {}
  targets = (m: Readonly<Reference>) =>
    [...new Set(m.publications.map((p) => p.run))].filter((id) => id !== m.current && !m.maybeDropped.has(id) && m.runs.get(id)!.scores.size > 0);
  check = (m: Readonly<Reference>) => this.targets(m).length > 0;
  async run(m: Reference, r: Real): Promise<void> {
    m.executed++;
    const targets = this.targets(m);
    const target = targets[this.pick % targets.length]!;
    await rollback({ config: testConfig(r.t), log: silentLog }, { runId: target });
    m.publish(m.runs.get(target)!, 'rollback');
    m.pendingChallenger = undefined;
    await checkViews(m, r);
  }
  toString = () => `rollback(${this.pick})`;
}

/** `scorejob model retire`: the model leaves every reader view. */
export class Retire implements Cmd {
  check = (m: Readonly<Reference>) => m.current !== undefined;
  async run(m: Reference, r: Real): Promise<void> {
    m.executed++;
    await retireModel({ config: testConfig(r.t), log: silentLog }, { modelName: 'customer-value', confirm: 'customer-value' });
    m.retire();
    m.pendingChallenger = undefined;
    await checkViews(m, r);
  }
  toString = () => 'retire';
}

const near = (a: number | null | undefined, b: number | undefined) => a !== null && a !== undefined && b !== undefined && Math.abs(a - b) < tol;

/** Every reader view against the reference. */
export async function checkViews(m: Reference, r: Real): Promise<void> {
  const q = async <T extends Record<string, unknown>>(sql: string) => (await r.t.pool.query<T>(sql)).rows;
  if (m.current === undefined) {
    // Retired: no rows in any reader view; the retire is the latest publication, and not current.
    for (const view of ['customer_scores', 'customer_score_changes', 'customer_score_reasons']) {
      expect((await q<{ n: string }>(`SELECT count(*) n FROM scoring.${view}`))[0]!.n, `${view} after a retire`).toBe('0');
    }
    const last = (await q('SELECT kind, is_current, rows_published::int FROM scoring.published_runs ORDER BY publication_id DESC LIMIT 1'))[0];
    expect(last, 'published_runs after a retire').toEqual({ kind: 'retire', is_current: false, rows_published: 0 });
    return;
  }
  const cur = m.runs.get(m.current)!;
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
  const changes = await q<{
    k: string;
    score: number | null;
    previous_score: number | null;
    is_new: boolean;
    is_removed: boolean;
    previous_run_id: string | null;
  }>('SELECT customer_id::text k, score, previous_score, is_new, is_removed, previous_run_id::text FROM scoring.customer_score_changes');
  const present = changes.filter((c) => !c.is_removed);
  expect(new Set(present.map((c) => c.k)), 'customer_score_changes customers').toEqual(new Set(cur.scores.keys()));
  expect(present.length, 'customer_score_changes: one row per customer').toBe(cur.scores.size);
  for (const c of changes) expect(c.previous_run_id, 'customer_score_changes.previous_run_id').toBe(cmpId);
  if (cmp === undefined) {
    expect(
      changes.every((c) => c.is_new && !c.is_removed && c.previous_score === null),
      'no comparison run: everybody new',
    ).toBe(true);
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
  const reasons = await q<{ k: string; n: string; run_id: string }>(
    'SELECT customer_id::text k, count(*) n, min(run_id)::text run_id FROM scoring.customer_score_reasons GROUP BY 1',
  );
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
  const pub = (
    await q<{ kind: string; run_id: string; rows_published: string; rows_with_reasons: string; compare_run_id: string | null; is_current: boolean }>(
      'SELECT kind, run_id::text, rows_published::text, rows_with_reasons::text, compare_run_id::text, is_current FROM scoring.published_runs ORDER BY publication_id DESC LIMIT 1',
    )
  )[0]!;
  const last = m.publications.at(-1)!;
  expect({ kind: pub.kind, run: pub.run_id, rows: Number(pub.rows_published), compare: pub.compare_run_id, current: pub.is_current }, 'published_runs').toEqual(
    {
      kind: last.kind,
      run: cur.id,
      rows: cur.scores.size,
      compare: last.compare,
      current: true,
    },
  );
  if (certain) expect(Number(pub.rows_with_reasons), 'published_runs.rows_with_reasons').toBe(withReasons);
}

/**
 * How a full run runs: in-process (5 in 8), shared with a second worker (2 in 8), or killed with kill -9
 * inside its second chunk and resumed (1 in 8: a kill and its resume cost about four plain runs).
 */
const how = fc.constantFrom<'plain' | 'workers' | 'kill'>('plain', 'plain', 'plain', 'plain', 'plain', 'workers', 'workers', 'kill');

// Weighted by repetition: source changes and runs are the common steps; rollbacks need a kept earlier run.
const commands = [
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 3 }), fc.boolean(), how).map(([a, k, c, how]) => new FullRun(a, k, c, how) as Cmd),
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 3 })).map(([a, k]) => new OnlyNewRun(a, k) as Cmd),
  fc
    .tuple(
      fc.constantFrom<'insert' | 'update' | 'delete' | 'reject'>('insert', 'update', 'delete', 'reject'),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 0, max: 40 }),
    )
    .map(([w, n, o]) => new SourceChange(w, n, o) as Cmd),
  fc.constant(new PublishChallenger()),
  fc.integer({ min: 0, max: 5 }).map((p) => new Rollback(p) as Cmd),
  fc.constant(new Retire()),
];
export const weighted = [
  commands[0]!,
  commands[0]!,
  commands[1]!,
  commands[1]!,
  commands[2]!,
  commands[2]!,
  commands[2]!,
  commands[3]!,
  commands[4]!,
  commands[4]!,
  commands[5]!,
];

/** What every sequence starts from: the template database (after its first run) and the reference of that state. */
export interface Fixture {
  template: TemplateDb;
  real: Omit<Real, 't'>;
  start: Reference;
}

/**
 * The template: 80 template customers, the source (50 of them), a migrated schema and a first full run
 * (only-new, rollback and challenger steps need a published run); the two models (the champion, and a
 * challenger that scores differently).
 */
export async function setUpFixture(keys: SourceKeyType = 'bigint'): Promise<Fixture> {
  const template = await createTemplateDb();
  const { t } = template;
  await seedCustomers(t.pool, { customers: 80, seed: 7, nullFraction: 0 });
  for (const sql of createSourceSql(keys, 50)) await t.pool.query(sql);
  await t.pool.query('ALTER TABLE src ADD PRIMARY KEY (customer_id)');
  const c = await t.pool.connect();
  try {
    await migrate(c, 'scoring');
  } finally {
    c.release();
  }
  const source = { table: 'src', key: 'customer_id', updated_column: 'updated_at' };
  const model = await modelCopy((mf) => (mf.source = source));
  const challenger = await modelCopy((mf) => {
    mf.name = 'churn2c';
    mf.version = '2.0.0';
    mf.source = source;
    (mf.features as { column: string; mean?: number }[])[1]!.mean! += 1;
  });
  const real = { model, challenger, scorer: await ReferenceScorer.load(model), challengerScorer: await ReferenceScorer.load(challenger), keys };
  const start = new Reference();
  await new FullRun(false, 3, false).run(start, { ...real, t });
  await template.freeze();
  return { template, real, start };
}

/** Stops the child processes started ahead, and drops the template and its clones. */
export async function tearDownFixture(f: Fixture | undefined): Promise<void> {
  await stopRunChildren();
  await f?.template.drop();
}

/** A fresh system for one sequence: a clone of the template and a copy of its reference; the clone is dropped after fn. */
export async function withFreshSequence<T>(f: Fixture, fn: (m: Reference, r: Real) => Promise<T>): Promise<T> {
  const t = await f.template.clone();
  try {
    return await fn(f.start.copy(), { ...f.real, t });
  } finally {
    f.template.discard(t);
  }
}
