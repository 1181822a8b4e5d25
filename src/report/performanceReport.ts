import type pg from 'pg';
import { quoteIdent } from '../db/sql.js';
import { formatCount, formatDecimal, formatPercent } from '../format.js';

/** One row of the reader view model_performance (sql/018_outcomes.sql): a run's band, or the whole run (band null). */
export interface PerformanceRow {
  run_id: string;
  band: string | null;
  maturity: number;
  mature: boolean;
  as_of: string;
  customers: number;
  with_outcome: number | null;
  positives: number | null;
  coverage: number | null;
  auc: number | null;
  gini: number | null;
  ks: number | null;
  brier: number | null;
  log_loss: number | null;
  top_decile_lift: number | null;
  calibration_error: number | null;
  positive_rate: number | null;
  estimated_auc: number | null;
  expected_positive_rate: number | null;
  decile_predicted: number[] | null;
  decile_observed: number[] | null;
  roc_fpr: number[] | null;
  roc_tpr: number[] | null;
}

/** What `runs show` tells about outcomes: the run's rows, and the whole-run rows of the model's synced runs. */
export interface PerformanceFacts {
  run: PerformanceRow[];
  /** Every synced run of the model, oldest first: realised against estimated over time. */
  history: PerformanceRow[];
}

const columns = `run_id::text, band, maturity, mature, as_of::text, customers::float8 AS customers, with_outcome::float8 AS with_outcome,
  positives::float8 AS positives, coverage, auc, gini, ks, brier, log_loss, top_decile_lift, calibration_error, positive_rate,
  estimated_auc, expected_positive_rate, decile_predicted, decile_observed, roc_fpr, roc_tpr`;

/** The run's figures from model_performance; undefined when `scorejob outcomes sync` never saw the run. */
export async function readPerformance(c: pg.ClientBase, schema: string, runId: string, modelName: string): Promise<PerformanceFacts | undefined> {
  const s = quoteIdent(schema);
  const run = await c.query<PerformanceRow>(`SELECT ${columns} FROM ${s}.model_performance WHERE run_id = $1 ORDER BY band NULLS FIRST`, [runId]);
  if (run.rows.length === 0) return undefined;
  const history = await c.query<PerformanceRow>(`SELECT ${columns} FROM ${s}.model_performance WHERE model_name = $1 AND band IS NULL ORDER BY run_id`, [
    modelName,
  ]);
  return { run: run.rows, history: history.rows };
}

const num = (v: number | null, digits = 3): string => (v === null ? '—' : formatDecimal(v, digits));
const pct = (v: number | null): string => (v === null ? '—' : formatPercent(v, 1));

/** The maturity of a run in words: what a reviewer must know before trusting the realised figures. */
export function maturityWords(r: PerformanceRow): string {
  return r.mature
    ? `mature (as of ${r.as_of.slice(0, 10)})`
    : `${Math.round(r.maturity * 100)}% of the horizon elapsed (as of ${r.as_of.slice(0, 10)}): figures may still move`;
}

/** `runs show`'s outcomes section: realised beside estimated, per band. */
export function formatPerformance(p: PerformanceFacts): string[] {
  const whole = p.run.find((r) => r.band === null);
  if (whole === undefined) return [];
  const lines = [
    '',
    `Outcomes: ${maturityWords(whole)}, ${formatCount(whole.with_outcome ?? 0)} of ${formatCount(whole.customers)} customers with an outcome (${pct(whole.coverage)})`,
  ];
  lines.push(
    `  ${'band'.padEnd(12)} ${'AUC'.padStart(7)} ${'est. AUC'.padStart(9)} ${'KS'.padStart(6)} ${'Brier'.padStart(7)} ${'ECE'.padStart(7)} ${'lift@10%'.padStart(9)} ${'rate'.padStart(7)} ${'expected'.padStart(9)}`,
  );
  for (const r of p.run) {
    lines.push(
      `  ${(r.band ?? 'all').padEnd(12)} ${num(r.auc).padStart(7)} ${num(r.estimated_auc).padStart(9)} ${num(r.ks).padStart(6)} ${num(r.brier, 4).padStart(7)} ${num(r.calibration_error, 4).padStart(7)} ${num(r.top_decile_lift, 2).padStart(9)} ${pct(r.positive_rate).padStart(7)} ${pct(r.expected_positive_rate).padStart(9)}`,
    );
  }
  if (p.history.length > 1) {
    lines.push('  Kept runs of the model (realised AUC / estimated):');
    for (const h of p.history)
      lines.push(`    run ${h.run_id.padEnd(8)} ${num(h.auc)} / ${num(h.estimated_auc)}  ${h.mature ? 'mature' : `${Math.round(h.maturity * 100)}% mature`}`);
  }
  return lines;
}
