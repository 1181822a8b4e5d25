import type { FeatureReport, MetricFamily } from '../../report/featureReport.js';
import { latestMaturePerformance, type LatestPerformance } from './performanceGate.js';

/**
 * Outcomes in the run's metrics file (docs/outcomes.md): `scorejob_model_auc` and
 * `scorejob_model_calibration_error` of the model's newest mature run, as `outcomes sync --metrics-file`
 * writes them; read after the run's own sync, so a run that published carries the figures it just made.
 * Nothing for a model without realised outcomes.
 */
export const outcomesReport: FeatureReport = {
  name: 'outcomes',
  metrics: async (c, schema, run) => performanceMetrics(await latestMaturePerformance(c, schema, run.model)),
};

/** The two gauges of a model's newest mature run; a figure not known yet is left out. */
export function performanceMetrics(latest: LatestPerformance | undefined): MetricFamily[] {
  const family = (name: string, help: string, value: number | null | undefined): MetricFamily[] =>
    value === null || value === undefined ? [] : [{ name, help, samples: [{ value }] }];
  return [
    ...family('scorejob_model_auc', "Realised AUC of the model's newest run whose outcome horizon has passed (scorejob outcomes sync).", latest?.auc),
    ...family('scorejob_model_calibration_error', 'Expected calibration error (score deciles) of the same run.', latest?.calibrationError),
  ];
}
