import pg from 'pg';
import { expect } from 'vitest';
import type { TestDatabase } from './db.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCli } from './cli.js';

/** What a failure must not touch: the published scores and the ledger. */
export interface LedgerState {
  publishedRun: string | null;
  publishedRows: number;
  runs: number;
}

export async function ledgerState(t: TestDatabase, schema = 'scoring'): Promise<LedgerState> {
  const s = `"${schema.replaceAll('"', '""')}"`;
  const p = await t.pool.query<{ run_id: string | null }>(`SELECT run_id::text FROM ${s}.published_run`);
  const n = await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM ${s}.customer_scores`);
  const r = await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM ${s}.score_runs`);
  return { publishedRun: p.rows[0]?.run_id ?? null, publishedRows: n.rows[0]?.n ?? 0, runs: r.rows[0]?.n ?? 0 };
}

/** Exit 2 cases: one line on stderr, and nothing written at all. */
export async function expectRefusedUnchanged(t: TestDatabase, before: LedgerState, r: { code: number | null; stderr: string }, message: RegExp): Promise<void> {
  expect(r.stderr).toMatch(message);
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(await ledgerState(t)).toEqual(before);
}

/** What `scoring.customer_scores` shows: the runs it comes from and customer -> score. */
export async function publishedSnapshot(t: TestDatabase): Promise<{ runs: string[]; scores: Map<string, number> }> {
  const { rows } = await t.pool.query<{ k: string; s: number; r: string }>('SELECT customer_id::text k, score s, run_id::text r FROM scoring.customer_scores');
  return { runs: [...new Set(rows.map((x) => x.r))], scores: new Map(rows.map((x) => [x.k, x.s])) };
}

/** One look of a reader at `scoring.customer_scores`: rows per run (one statement, so one snapshot), or the error it got. */
export interface ReaderPoll {
  runs: { run_id: string; n: number }[];
  error?: string;
}

/**
 * A downstream reader polling `scoring.customer_scores` on a connection of its own, from now until
 * `stop()`, which takes a last look and returns every poll. Nothing is asserted inside the loop: the caller asserts on the
 * whole list afterwards.
 */
export function startReader(t: TestDatabase, intervalMs = 25, schema = 'scoring'): { stop(): Promise<ReaderPoll[]> } {
  const s = `"${schema.replaceAll('"', '""')}"`;
  const polls: ReaderPoll[] = [];
  let stopping = false;
  const client = new pg.Client({ connectionString: t.url });
  const poll = async () => {
    try {
      const { rows } = await client.query<{ run_id: string; n: number }>(
        `SELECT run_id::text AS run_id, count(*)::int AS n FROM ${s}.customer_scores GROUP BY 1 ORDER BY 1`,
      );
      polls.push({ runs: rows });
    } catch (err) {
      polls.push({ runs: [], error: (err as Error).message });
    }
  };
  const loop = (async () => {
    await client.connect();
    while (!stopping) {
      await poll();
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    stop: async () => {
      stopping = true;
      try {
        await loop;
        await poll(); // a last look, after whatever the caller waited for
      } finally {
        await client.end().catch(() => undefined);
      }
      return polls;
    },
  };
}

/** The polls that did not show exactly one of `runs`, complete (`rows` rows); and the runs seen, in order, repeats collapsed. */
export function judgePolls(polls: ReaderPoll[], runs: string[], rows: number): { bad: ReaderPoll[]; sequence: string[] } {
  const bad = polls.filter((p) => p.error !== undefined || p.runs.length !== 1 || p.runs[0]!.n !== rows || !runs.includes(p.runs[0]!.run_id));
  const sequence: string[] = [];
  for (const p of polls) if (p.runs.length === 1 && sequence.at(-1) !== p.runs[0]!.run_id) sequence.push(p.runs[0]!.run_id);
  return { bad, sequence };
}

/**
 * Customers with rejects in every chunk: seeds `customers` (no random NULLs) and takes tenure_months
 * (no fill in the shipped model) away from every 150th customer.
 */
export async function seedWithRejects(t: TestDatabase, customers: number, seed: number): Promise<void> {
  await seedCustomers(t.pool, { customers, seed, nullFraction: 0 });
  await t.pool.query(
    `UPDATE customers SET tenure_months = NULL WHERE customer_id IN (SELECT customer_id FROM (SELECT customer_id, row_number() OVER (ORDER BY customer_id) n FROM customers) x WHERE n % 150 = 0)`,
  );
}

/** A run's rejects as "customer_id reason" lines, in key order. */
export async function rejectLines(t: TestDatabase, runId: string): Promise<string[]> {
  const { rows } = await t.pool.query<{ r: string }>(
    `SELECT customer_id || ' ' || reason AS r FROM scoring.score_rejects WHERE run_id = $1 ORDER BY customer_id`,
    [runId],
  );
  return rows.map((x) => x.r);
}

/** Resumes a run by the CLI and expects it to publish exactly the baseline's customers, quietly. */
export async function expectResumeRestores(
  t: TestDatabase,
  runId: string,
  baseline: { scores: Map<string, number> },
): Promise<{ runs: string[]; scores: Map<string, number> }> {
  const resumed = await runCli(['resume', runId], t.env);
  expect(resumed.stderr).toBe('');
  expect(resumed.code).toBe(0);
  const after = await publishedSnapshot(t);
  expect(after.runs).toEqual([runId]);
  expect(after.scores.size).toBe(baseline.scores.size);
  return after;
}
