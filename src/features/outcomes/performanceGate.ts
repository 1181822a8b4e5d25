import type pg from 'pg';
import { quoteIdent } from '../../db/sql.js';

/** The realised whole-run figures of a model's newest mature synced run. */
export interface LatestPerformance {
  runId: string;
  auc: number | null;
  calibrationError: number | null;
  withOutcome: number;
}

/** The newest run of the model whose horizon has passed and that has realised figures; undefined when none has. */
export async function latestMaturePerformance(client: pg.ClientBase, schema: string, modelName: string): Promise<LatestPerformance | undefined> {
  const s = quoteIdent(schema);
  const { rows } = await client.query<{ run_id: string; auc: number | null; calibration_error: number | null; with_outcome: string }>(
    `SELECT run_id::text, auc, calibration_error, with_outcome FROM ${s}.model_performance
      WHERE model_name = $1 AND band IS NULL AND mature AND with_outcome > 0
        AND run_id IN (SELECT run_id FROM ${s}.score_runs WHERE published_at IS NOT NULL)
      ORDER BY run_id DESC LIMIT 1`,
    [modelName],
  );
  const r = rows[0];
  return r === undefined ? undefined : { runId: r.run_id, auc: r.auc, calibrationError: r.calibration_error, withOutcome: Number(r.with_outcome) };
}

/**
 * `run --min-auc`: the breach, in one line, when the realised AUC of the model's newest mature run fell
 * below `minAuc`; undefined when it did not, or when no run has matured yet (nothing to judge the model by).
 * The run it gates is published only with `publish --force --reason`.
 */
export async function performanceGate(
  client: pg.ClientBase,
  ledger: { readonly schema: string },
  modelName: string,
  minAuc: number,
  gated?: { runId: string },
): Promise<string | undefined> {
  const latest = await latestMaturePerformance(client, ledger.schema, modelName);
  if (latest === undefined || latest.auc === null || latest.auc >= minAuc) return undefined;
  return `the realised AUC of model "${modelName}" fell to ${latest.auc.toFixed(4)} (run ${latest.runId}, ${latest.withOutcome} customers with a matured outcome), below --min-auc ${minAuc}: publish with \`scorejob publish ${gated?.runId ?? '<run-id>'} --force --reason TEXT\` once reviewed, or retrain the model`;
}
