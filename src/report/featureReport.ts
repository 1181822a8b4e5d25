import type pg from 'pg';
import type { RunRow } from '../ledger/ledger.js';
import type { RunDetail } from './runDetail.js';

/** One sample of a gauge in a run's metrics file; the `model` label is added by the file's writer. */
export interface MetricSample {
  labels?: Record<string, string>;
  value: number;
}

/** A gauge a feature adds to a run's metrics file (src/observe/metrics.ts renders it beside the run's own). */
export interface MetricFamily {
  name: string;
  help: string;
  samples: MetricSample[];
}

/** The run a feature's metrics are asked for, at the end of the run (success or failure). */
export interface MetricsRun {
  readonly runId: string;
  /** The run's model (manifest name): the `model` label. */
  readonly model: string;
}

/** What a feature section of the HTML page may use: the page's escaping. */
export interface HtmlKit {
  readonly escape: (s: string) => string;
}

/**
 * What a run feature shows of a run, wherever people look (`runs show`, the HTML page, the run's metrics
 * file). Features define it beside their code (src/features/<name>/) and the commands pass the registered
 * ones down (src/features/reports.ts `featureReports`): the report calls them in registration order instead
 * of knowing each feature. Every part is optional; a feature with nothing to say of a run returns nothing.
 */
export interface FeatureReport {
  /** The feature's name: the key of what `read` returns in `RunDetail.reports`. */
  readonly name: string;
  /** Reads what the feature shows beyond the run's stored statistics (kept in `detail.reports[name]`, JSON included). */
  read?(c: pg.ClientBase, schema: string, run: RunDetail): Promise<unknown>;
  /** What the feature adds to the run's analyst facts (`runs show`'s `analyst`), from the run's row: keys it declares on AnalystFacts. */
  analyst?(run: RunRow): Record<string, unknown>;
  /** Lines of `runs show`, each section starting with an empty line. */
  showLines?(run: RunDetail): string[];
  /** Rows of the HTML page's "Run" table: label and text. */
  htmlFacts?(run: RunDetail): [string, string][];
  /** A section of the HTML page (an `<h2>` and its content), built with `html.escape` for every text. */
  htmlSection?(run: RunDetail, html: HtmlKit): string;
  /** Gauges for the run's metrics file (read from the ledger; an empty list adds nothing). */
  metrics?(c: pg.ClientBase, schema: string, run: MetricsRun): Promise<MetricFamily[]>;
}

/** The features' reads for one run, by feature name (those that read nothing or found nothing left out). */
export async function readFeatureReports(
  c: pg.ClientBase,
  schema: string,
  run: RunDetail,
  reports: readonly FeatureReport[],
): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const r of reports) {
    const facts = await r.read?.(c, schema, run);
    if (facts !== undefined) out[r.name] = facts;
  }
  return out;
}

/** Every feature's gauges for the run's metrics file, in registration order. */
export async function featureMetrics(c: pg.ClientBase, schema: string, run: MetricsRun, reports: readonly FeatureReport[]): Promise<MetricFamily[]> {
  const out: MetricFamily[] = [];
  for (const r of reports) out.push(...((await r.metrics?.(c, schema, run)) ?? []));
  return out;
}
