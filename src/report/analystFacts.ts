import type pg from 'pg';
import { Ledger, type RunRow } from '../ledger/ledger.js';
import { formatCount } from '../format.js';

/** What `runs show` says of a run's kind (full or only_new) and reasons (issue 19). */
export interface AnalystFacts {
  /** score_runs.kind: full, only_new, or the kind a feature gives its sibling runs. */
  kind: string;
  /** A sibling run: the run it was scored beside. */
  champion_run_id?: string | null;
  // A feature's own facts (FeatureReport.analyst) follow here, each feature declaring its keys from its folder.
  /** only_new: the published run whose scores it carried forward, and how many. */
  base_run_id: string | null;
  rows_carried: number;
  /** `--reasons K`: K, the unit, the method, and how often each feature is a customer's first reason. */
  reasons: { k: number; measured_in: string; method: string; first_reason: { feature: string; customers: number }[] } | null;
}

/**
 * The facts from the run's row (sql/010 columns; a row read before that migration has none) and, for a run
 * with reasons whose table is kept, one pass over it; `features`: the features' facts (FeatureReport.analyst), merged in.
 */
export async function analystFacts(c: pg.ClientBase, schema: string, run: RunRow, features: Readonly<Record<string, unknown>> = {}): Promise<AnalystFacts> {
  const row = run as RunRow & { kind?: string; base_run_id?: string | null; rows_carried?: string | number; champion_run_id?: string | null };
  const reasons = run.params.reasons ?? null;
  let firstReason: { feature: string; customers: number }[] = [];
  if (reasons) {
    const storage = new Ledger(schema).storage;
    const table = storage.reasonsTable(run.run_id);
    if (await storage.exists(c, table)) {
      const { rows } = await c.query<{ f: number; n: number }>(`SELECT features[1] AS f, count(*)::int AS n FROM ${table} GROUP BY 1 ORDER BY 2 DESC, 1`);
      firstReason = rows.map((r) => ({ feature: reasons.features[r.f - 1] ?? String(r.f), customers: r.n }));
    }
  }
  return {
    kind: row.kind ?? 'full',
    champion_run_id: row.champion_run_id ?? null,
    ...features,
    base_run_id: row.base_run_id ?? null,
    rows_carried: Number(row.rows_carried ?? 0),
    reasons: reasons && { k: reasons.k, measured_in: reasons.space, method: reasons.method, first_reason: firstReason },
  };
}

/** The facts as text lines for `runs show` (none for a full run without reasons); a sibling run's are its feature's (FeatureReport). */
export function formatAnalystFacts(f: AnalystFacts | undefined): string[] {
  if (!f) return [];
  const lines: string[] = [];
  if (f.kind === 'only_new')
    lines.push(
      '',
      `Only new customers: ${formatCount(f.rows_carried)} scores carried forward from run ${f.base_run_id ?? '?'} (their run_id and scored_at stay that run's)`,
    );
  if (f.reasons) {
    lines.push('', `Reasons: ${f.reasons.k} per customer, in the ${f.reasons.measured_in} (${f.reasons.method})`);
    const total = f.reasons.first_reason.reduce((n, r) => n + r.customers, 0);
    for (const r of f.reasons.first_reason.slice(0, 10))
      lines.push(
        `  ${r.feature.padEnd(28)} first reason of ${formatCount(r.customers).padStart(10)} customers (${((100 * r.customers) / Math.max(total, 1)).toFixed(1)}%)`,
      );
  }
  return lines;
}
