import { formatAnalystFacts } from './analystFacts.js';
import type { FeatureSummary, FeaturesSummary } from '../stats/featureStats.js';
import { coarsen, type Drift } from '../stats/psi.js';
import type { RunDetail } from './runsReport.js';
import type { ScoreSummary } from '../stats/scoreStats.js';
import { formatCount, formatDecimal, formatFraction, formatPercent, table } from '../format.js';

/** The usual reading of a PSI value. */
export function psiVerdict(psi: number): string {
  return psi < 0.1 ? 'stable' : psi < 0.25 ? 'moderate shift' : 'major shift';
}

export function formatPsi(d: Drift | null | undefined): string {
  if (!d || d.psi === null)
    return d?.baseline_run_id
      ? `— (cannot be computed against run ${d.baseline_run_id}: ${d.unavailable ?? 'the histograms are not comparable'})`
      : '— (no previous published run)';
  return `${formatDecimal(d.psi)} (${psiVerdict(d.psi)}) against run ${d.baseline_run_id}`;
}

/** Shares of each of `bins` coarse bins, or undefined when the histogram cannot be merged to that many. */
export function binShares(h: ScoreSummary['histogram'], bins: number): number[] | undefined {
  const counts = coarsen(h, bins);
  if (!counts) return undefined;
  const total = counts.reduce((s, v) => s + v, 0);
  return counts.map((c) => (total === 0 ? 0 : c / total));
}

const eighths = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/** A horizontal bar of `share / max` of `width` cells, in eighths of a cell. */
function bar(share: number, max: number, width: number): string {
  const units = max === 0 ? 0 : Math.round((share / max) * width * 8);
  return ('█'.repeat(Math.floor(units / 8)) + eighths[units % 8]).padEnd(width);
}

/**
 * The score histogram drawn in the terminal: `bins` coarse bins as bars, beside the previous published
 * run's on the same scale.
 */
export function formatHistogram(current: ScoreSummary['histogram'], previous: ScoreSummary['histogram'] | null | undefined, bins = 20, width = 24): string[] {
  const a = binShares(current, bins);
  if (!a) return [];
  const p = previous && previous.lo === current.lo && previous.hi === current.hi ? binShares(previous, bins) : undefined;
  const max = Math.max(...a, ...(p ?? []));
  const step = (current.hi - current.lo) / bins;
  const digits = step < 0.01 ? 3 : 2;
  return a.map((share, i) => {
    const lo = (current.lo + i * step).toFixed(digits);
    const hi = (current.lo + (i + 1) * step).toFixed(digits);
    const left = `${bar(share, max, width)} ${formatPercent(share, 1).padStart(6)}`;
    return `  ${lo}–${hi}  ${left}${p ? `  │ ${bar(p[i] ?? 0, max, width)} ${formatPercent(p[i] ?? 0, 1).padStart(6)}` : ''}`;
  });
}

const pct = formatFraction;

/** Features whose values are categories: an unknown one is counted. */
export function hasCategories(f: Pick<FeatureSummary, 'transform'>): boolean {
  return f.transform === 'one_hot' || f.transform === 'index';
}

/** One of a feature's row fractions, named for people. */
export interface FeatureChange {
  column: string;
  what: 'NULL' | 'outside the training range' | 'unknown category';
  now: number;
  before: number;
}

/**
 * The fractions that moved enough to look at, against the previous published run: one that appears
 * (0 before, any now), or one that moved by at least half a percentage point, or doubled (or halved)
 * while above 0.1%. What a person reading the report should not miss among rows that look alike.
 */
export function featureChanges(f: FeaturesSummary, previous: FeaturesSummary | null | undefined): FeatureChange[] {
  if (!previous) return [];
  const changed = (now: number, before: number) =>
    (before === 0 && now > 0) || Math.abs(now - before) >= 0.005 || (Math.max(now, before) >= 0.001 && (now >= 2 * before || before >= 2 * now));
  const out: FeatureChange[] = [];
  for (const x of f.features) {
    const b = previous.features.find((p) => p.column === x.column);
    if (!b) continue;
    const pairs: [FeatureChange['what'], number, number, boolean][] = [
      ['NULL', x.null_fraction, b.null_fraction, true],
      ['outside the training range', x.outside_range_fraction, b.outside_range_fraction, x.min !== null || x.max !== null],
      ['unknown category', x.unknown_category_fraction, b.unknown_category_fraction, hasCategories(x)],
    ];
    for (const [what, now, before, applies] of pairs) if (applies && changed(now, before)) out.push({ column: x.column, what, now, before });
  }
  return out;
}

/** The per-feature table: NULL, outside the training range, unknown category; the previous run's in brackets. */
export function formatFeatureTable(f: FeaturesSummary, previous: FeaturesSummary | null | undefined): string[] {
  const prevOf = (column: string): FeatureSummary | undefined => previous?.features.find((x) => x.column === column);
  const pair = (now: string, before: string | undefined) => (previous ? `${now} (${before ?? '—'})` : now);
  const rows = f.features.map((x) => {
    const b = prevOf(x.column);
    const ranged = x.min !== null || x.max !== null;
    return [
      x.column,
      x.transform,
      pair(pct(x.null_fraction), b && pct(b.null_fraction)),
      ranged ? pair(pct(x.outside_range_fraction), b && pct(b.outside_range_fraction)) : '—',
      hasCategories(x) ? pair(pct(x.unknown_category_fraction), b && pct(b.unknown_category_fraction)) : '—',
    ];
  });
  return table([['feature', 'transform', 'NULL', 'outside training range', 'unknown category'], ...rows], { indent: '  ' });
}

/** The statistics part of `scorejob runs show`: drift, the histogram beside the previous run's, the feature table. */
export function formatRunStatistics(r: RunDetail): string[] {
  const lines: string[] = [];
  if (r.forced_publish) {
    lines.push(
      '',
      `Published by force on ${r.forced_publish.at} by ${r.forced_publish.by}@${r.forced_publish.host}, over: ${r.forced_publish.overridden_error ?? '—'}${r.forced_publish.reason ? `; reason: ${r.forced_publish.reason}` : ''}`,
    );
  }
  if (r.stats && r.stats.count > 0) {
    lines.push('', `Drift (PSI over ${r.drift?.bins ?? 10} bins)  ${formatPsi(r.drift)}`);
    const prev = r.previous_published?.stats?.histogram;
    lines.push('', `Score histogram (this run${prev ? ` │ previous published run ${r.previous_published?.run_id}` : ''}):`);
    lines.push(...formatHistogram(r.stats.histogram, prev));
  }
  if (r.features && r.features.features.length > 0) {
    const prev = r.previous_published?.features;
    lines.push(
      '',
      `Features (${formatCount(r.features.rows)} rows read${prev ? `; previous published run ${r.previous_published?.run_id} in brackets` : ''}):`,
    );
    lines.push(...formatFeatureTable(r.features, prev));
  }
  lines.push(...formatFeatureDrift(r.feature_drift));
  lines.push(...formatSegments(r.segments));
  lines.push(...formatAnalystFacts(r.analyst));
  // Not for a run that scored no customer: publishing it would empty customer_scores (publish --force refuses it).
  if (r.error_kind === 'gate' && r.status === 'failed' && r.chunks_done === r.chunks_total && r.rows_scored > 0) {
    lines.push('', `After review, \`scorejob publish ${r.run_id} --force --reason "<what you checked>"\` publishes these scores as they are.`);
  }
  return lines;
}

/** The features' PSI against the model's baseline (and the previous published run), the top movers first. */
function formatFeatureDrift(d: RunDetail['feature_drift']): string[] {
  if (!d || d.features.length === 0) return [];
  const psi = (v: number | null) => (v === null ? '—' : v.toFixed(4)).padStart(8);
  const width = Math.max(7, ...d.features.map((f) => f.feature.length));
  const lines = ['', `Feature drift (PSI vs the model's baseline${d.previous_run_id ? ` and vs run ${d.previous_run_id}` : ''}, top movers first):`];
  for (const f of d.features) lines.push(`  ${f.feature.padEnd(width)} ${psi(f.psi_baseline)}${d.previous_run_id ? ` ${psi(f.psi_previous)}` : ''}`);
  return lines;
}

/** The segments that moved most against the previous published run (every one: the segment_drift view). */
function formatSegments(d: RunDetail['segments']): string[] {
  if (!d || d.segments === 0) return [];
  const label = (m: (typeof d.top)[number]) => `${m.segment}=${m.value_kind === 'value' ? m.value : `(${m.value_kind})`}`;
  const width = Math.max(7, ...d.top.map((m) => label(m).length));
  const against = d.previous_run_id ? `PSI vs run ${d.previous_run_id}` : 'no earlier published run to compare with';
  const lines = ['', `Segments (${d.segments}; ${against}; top movers first, all in scoring.segment_drift):`];
  for (const m of d.top) {
    const psi = m.psi_previous === null ? '—' : m.psi_previous.toFixed(4);
    const share = `${(m.share * 100).toFixed(1)}%${m.previous_share !== null ? ` (was ${(m.previous_share * 100).toFixed(1)}%)` : ''}`;
    lines.push(
      `  ${label(m).padEnd(width)} ${psi.padStart(8)}  ${formatCount(m.rows_scored).padStart(10)} rows  ${share}  mean ${m.mean_score?.toFixed(4) ?? '—'}`,
    );
  }
  return lines;
}
