import { expect } from 'vitest';
import type { TestDatabase } from './db.js';

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
