import type pg from 'pg';
import { featureMetrics, type FeatureReport, type MetricFamily, type MetricsRun } from '../report/featureReport.js';
import { challengerReport } from './challenger/challengerReport.js';
import { featureDriftReport } from './feature-drift/featureDriftReport.js';
import { outcomesReport } from './outcomes/outcomesReport.js';
import { segmentsReport } from './segments/segmentsReport.js';

/**
 * What the run features show of a run (`runs show`, the HTML page, the run's metrics file), in the order of
 * their registration in index.ts. A list of its own, apart from the features' definitions: those load the
 * model backends, which `runs` and every other command's start-up must not pay for. A feature that shows
 * itself in reports: its `<name>Report.ts` (importing nothing heavier than the ledger) and one line here.
 */
export const featureReports: readonly FeatureReport[] = [challengerReport, featureDriftReport, segmentsReport, outcomesReport];

/** The features' gauges for a run's metrics file (read from the ledger at the run's end). */
export function runFeatureMetrics(c: pg.ClientBase, schema: string, run: MetricsRun): Promise<MetricFamily[]> {
  return featureMetrics(c, schema, run, featureReports);
}
