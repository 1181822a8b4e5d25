import type { FeatureReport, HtmlKit, MetricFamily } from '../../report/featureReport.js';
import type { RunDetail } from '../../report/runsReport.js';
import { formatPercent } from '../../format.js';
import type { FeatureDistributionShares } from '../../stats/featurePsi.js';
import { DriftStore } from './driftStore.js';

/** How many features the metrics file carries: the top movers against the baseline (docs/observability.md). */
export const featurePsiMetricsTop = 10;

/**
 * Feature drift in the report (docs/models.md "Feature drift"): every feature's PSI in `runs show`, the top
 * movers with their distributions beside the baseline on the HTML page, and the top movers' PSI in the
 * run's metrics file.
 */
export const featureDriftReport: FeatureReport = {
  name: 'feature-drift',
  showLines: (r) => formatFeatureDrift(r.feature_drift),
  htmlSection: (r, html) => driftHtml(r, html),
  metrics: async (c, schema, run) => psiMetrics(await new DriftStore(schema).runPsi(c, run.runId, featurePsiMetricsTop)),
};

const psiText = (v: number | null) => (v === null ? '—' : v.toFixed(4));

/** The features' PSI against the model's baseline (and the previous published run), the top movers first. */
export function formatFeatureDrift(d: RunDetail['feature_drift']): string[] {
  if (!d || d.features.length === 0) return [];
  const psi = (v: number | null) => psiText(v).padStart(8);
  const width = Math.max(7, ...d.features.map((f) => f.feature.length));
  const lines = ['', `Feature drift (PSI vs the model's baseline${d.previous_run_id ? ` and vs run ${d.previous_run_id}` : ''}, top movers first):`];
  for (const f of d.features) lines.push(`  ${f.feature.padEnd(width)} ${psi(f.psi_baseline)}${d.previous_run_id ? ` ${psi(f.psi_previous)}` : ''}`);
  return lines;
}

/** `scorejob_feature_psi{model,feature,against="baseline|previous"}`: a PSI not known (no previous run) is left out. */
export function psiMetrics(rows: readonly { feature: string; psi_baseline: number | null; psi_previous: number | null }[]): MetricFamily[] {
  const samples = rows.flatMap((r) => [
    ...(r.psi_baseline === null ? [] : [{ labels: { feature: r.feature, against: 'baseline' }, value: r.psi_baseline }]),
    ...(r.psi_previous === null ? [] : [{ labels: { feature: r.feature, against: 'previous' }, value: r.psi_previous }]),
  ]);
  if (samples.length === 0) return [];
  return [
    {
      name: 'scorejob_feature_psi',
      help: `PSI of a feature in the last run against the model's training baseline or the previous published run (the ${featurePsiMetricsTop} features that moved most against the baseline).`,
      samples,
    },
  ];
}

const cls = (psi: number | null) => (psi === null ? '' : psi < 0.1 ? 'stable' : psi < 0.25 ? 'moderate' : 'major');

/** The PSI table, then each top mover's shares per bin beside the baseline's (and the previous run's). */
function driftHtml(r: RunDetail, html: HtmlKit): string {
  const d = r.feature_drift;
  if (!d || d.features.length === 0) return '';
  const e = (t: string): string => html.escape(t);
  const prev = d.previous_run_id;
  const cell = (v: number | null) => `<td class="n"><span class="${cls(v)}">${psiText(v)}</span></td>`;
  const psiTable =
    `<table id="feature-drift"><tr><th>feature</th><th>PSI vs baseline</th>${prev ? `<th>PSI vs run ${e(prev)}</th>` : ''}</tr>` +
    d.features.map((f) => `<tr><td>${e(f.feature)}</td>${cell(f.psi_baseline)}${prev ? cell(f.psi_previous) : ''}</tr>`).join('') +
    '</table>';
  const movers = (d.distributions ?? []).map((x) => distributionTable(x, prev, html)).join('');
  return (
    `<h2>Feature drift</h2><p class="note">PSI of each feature's values against the model's training baseline${prev ? ` and the previous published run ${e(prev)}` : ''}, the top movers first; below 0.1 stable, 0.1–0.25 moderate shift, above 0.25 major shift.</p>` +
    psiTable +
    (movers === '' ? '' : `<h3>Top movers: shares per bin</h3>${movers}`)
  );
}

/** One feature's shares per bin as a table with a bar per share: this run, the baseline, the previous run. */
function distributionTable(x: FeatureDistributionShares, prev: string | null, html: HtmlKit): string {
  const e = (t: string): string => html.escape(t);
  const max = Math.max(1e-9, ...x.run, ...x.baseline, ...(x.previous ?? []));
  const bar = (share: number, colour: string) =>
    `<svg width="120" height="10" role="img" aria-label="${formatPercent(share, 1)}"><rect width="${((120 * share) / max).toFixed(1)}" height="10" fill="${colour}"/></svg> ${formatPercent(share, 1)}`;
  const rows = x.bins.map(
    (bin, i) =>
      `<tr><td>${e(bin)}</td><td>${bar(x.run[i] ?? 0, '#2f6fde')}</td><td>${bar(x.baseline[i] ?? 0, '#a7b0bf')}</td>${x.previous ? `<td>${bar(x.previous[i] ?? 0, '#d4a72c')}</td>` : ''}</tr>`,
  );
  return (
    `<table class="feature-distribution" data-feature="${e(x.feature)}"><tr><th>${e(x.feature)}</th><th>this run</th><th>baseline</th>${x.previous && prev ? `<th>run ${e(prev)}</th>` : ''}</tr>` +
    rows.join('') +
    '</table>'
  );
}
