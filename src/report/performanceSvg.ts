import { formatDecimal } from '../format.js';
import { maturityWords, type PerformanceFacts } from './performanceReport.js';

const W = 360;
const pad = 40;
const side = W - 2 * pad;
const x = (v: number) => (pad + v * side).toFixed(1);
const y = (v: number) => (pad + (1 - v) * side).toFixed(1);

function frame(id: string, label: string, xTitle: string, yTitle: string, inner: string[]): string {
  const ticks = [0, 0.25, 0.5, 0.75, 1].map(
    (t) =>
      `<text x="${x(t)}" y="${W - pad + 14}" font-size="10" text-anchor="middle" fill="#5b6577">${t}</text><text x="${pad - 6}" y="${(Number(y(t)) + 3).toFixed(1)}" font-size="10" text-anchor="end" fill="#5b6577">${t}</text>`,
  );
  return (
    `<svg id="${id}" viewBox="0 0 ${W} ${W}" width="${W}" role="img" aria-label="${label}">` +
    `<rect x="${pad}" y="${pad}" width="${side}" height="${side}" fill="none" stroke="#5b6577"/>` +
    `<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="#c8ced8" stroke-dasharray="4 3"/>` +
    ticks.join('') +
    inner.join('') +
    `<text x="${W / 2}" y="${W - 6}" font-size="12" text-anchor="middle">${xTitle}</text>` +
    `<text x="12" y="${W / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 12 ${W / 2})">${yTitle}</text></svg>`
  );
}

/** Observed rate against mean score per decile: on the diagonal, the scores are calibrated. */
export function reliabilitySvg(predicted: readonly number[], observed: readonly number[]): string {
  const points = predicted.map(
    (p, i) =>
      `<circle cx="${x(p)}" cy="${y(observed[i] ?? 0)}" r="4" fill="#2f6fde"><title>decile ${i + 1}: mean score ${formatDecimal(p, 3)}, observed ${formatDecimal(observed[i] ?? 0, 3)}</title></circle>`,
  );
  const path = predicted.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p)},${y(observed[i] ?? 0)}`).join(' ');
  return frame('reliability', 'reliability diagram', 'mean score (decile)', 'observed rate', [`<path d="${path}" fill="none" stroke="#2f6fde"/>`, ...points]);
}

/** The ROC curve from (0,0) to (1,1) through the stored points. */
export function rocSvg(fpr: readonly number[], tpr: readonly number[]): string {
  const pts = [[0, 0], ...fpr.map((f, i) => [f, tpr[i] ?? 0]), [1, 1]];
  const path = pts.map(([f, t], i) => `${i === 0 ? 'M' : 'L'}${x(f ?? 0)},${y(t ?? 0)}`).join(' ');
  return frame('roc', 'ROC curve', 'false positive rate', 'true positive rate', [`<path d="${path}" fill="none" stroke="#2f6fde" stroke-width="2"/>`]);
}

/** The HTML report's outcomes section; empty when the run was never synced. */
export function performanceHtml(p: PerformanceFacts | undefined, escape: (s: string) => string): string {
  const whole = p?.run.find((r) => r.band === null);
  if (p === undefined || whole === undefined) return '';
  const cell = (v: number | null, d = 3) => (v === null ? '—' : formatDecimal(v, d));
  const rows = p.run.map(
    (r) =>
      `<tr><td>${escape(r.band ?? 'all')}</td><td>${cell(r.auc)}</td><td>${cell(r.estimated_auc)}</td><td>${cell(r.ks)}</td><td>${cell(r.brier, 4)}</td><td>${cell(r.calibration_error, 4)}</td><td>${cell(r.positive_rate)}</td><td>${cell(r.expected_positive_rate)}</td></tr>`,
  );
  const history = p.history.map(
    (h) =>
      `<tr><td>${escape(h.run_id)}</td><td>${cell(h.auc)}</td><td>${cell(h.estimated_auc)}</td><td>${cell(h.calibration_error, 4)}</td><td>${escape(h.mature ? 'mature' : `${Math.round(h.maturity * 100)}%`)}</td></tr>`,
  );
  const charts = [
    whole.decile_predicted && whole.decile_observed ? reliabilitySvg(whole.decile_predicted, whole.decile_observed) : '',
    whole.roc_fpr && whole.roc_tpr ? rocSvg(whole.roc_fpr, whole.roc_tpr) : '',
  ];
  return [
    '<h2>Outcomes</h2>',
    `<p class="note">${escape(maturityWords(whole))}; ${whole.with_outcome ?? 0} of ${whole.customers} customers with an outcome. Estimated figures read the scores as calibrated probabilities.</p>`,
    `<table><tr><th>band</th><th>AUC</th><th>estimated AUC</th><th>KS</th><th>Brier</th><th>ECE</th><th>positive rate</th><th>expected</th></tr>${rows.join('')}</table>`,
    `<div class="charts">${charts.join('')}</div>`,
    `<h3>Kept runs: realised against estimated</h3><table><tr><th>run</th><th>AUC</th><th>estimated AUC</th><th>ECE</th><th>maturity</th></tr>${history.join('')}</table>`,
  ].join('\n');
}
