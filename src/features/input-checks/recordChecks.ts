import type pg from 'pg';
import { quoteQualified } from '../../db/sql.js';
import type { CheckResult } from './evaluate.js';

/** `run_input_checks` (sql/019_inputs.sql): this feature's table, one row per check per attempt of a run. */
export async function recordChecks(c: pg.ClientBase, schema: string, runId: string, results: readonly CheckResult[]): Promise<void> {
  if (results.length === 0) return;
  await c.query(
    `INSERT INTO ${quoteQualified(`${schema}.run_input_checks`)} (run_id, check_name, outcome, detail, figures, skip_reason)
     SELECT $1, n, o, d, f, r FROM unnest($2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[]) AS t(n, o, d, f, r)`,
    [
      runId,
      results.map((r) => r.name),
      results.map((r) => r.outcome),
      results.map((r) => r.detail),
      results.map((r) => JSON.stringify(r.figures)),
      results.map((r) => r.reason ?? null),
    ],
  );
}

/** The checks of a run's latest attempt, in the order they ran (for `runs show` and tests). */
export async function checksOfRun(c: pg.ClientBase, schema: string, runId: string): Promise<CheckResult[]> {
  const { rows } = await c.query<{
    check_name: string;
    outcome: CheckResult['outcome'];
    detail: string;
    figures: Record<string, unknown>;
    skip_reason: string | null;
  }>(
    `SELECT check_name, outcome, detail, figures, skip_reason FROM ${quoteQualified(`${schema}.run_input_checks`)}
      WHERE run_id = $1 AND checked_at = (SELECT max(checked_at) FROM ${quoteQualified(`${schema}.run_input_checks`)} WHERE run_id = $1) ORDER BY check_no`,
    [runId],
  );
  return rows.map((r) => ({
    name: r.check_name,
    outcome: r.outcome,
    detail: r.detail,
    figures: r.figures,
    ...(r.skip_reason === null ? {} : { reason: r.skip_reason }),
  }));
}
