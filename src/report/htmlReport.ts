import { formatAnalystFacts } from './analystFacts.js';
import { UsageError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { formatCount, formatDecimal, formatFraction, formatPercent } from '../format.js';
import type { FeatureSummary } from '../stats/featureStats.js';
import { binShares, featureChanges, formatPsi, hasCategories, psiVerdict } from './formatStats.js';
import type { RunDetail } from './runsReport.js';
import type { FeatureReport } from './featureReport.js';
import { modelIdentity } from './formatRuns.js';
import { performanceHtml } from './performanceSvg.js';
import type { ScoreSummary } from '../stats/scoreStats.js';

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const css = `
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2433;margin:32px auto;max-width:1080px;padding:0 24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;padding-bottom:4px}
.sub{color:#5b6577;margin:0 0 16px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 10px;border-bottom:1px solid #eceff4;vertical-align:top}
th{background:#f5f7fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
#facts th{width:180px}#scores{width:auto;min-width:50%}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.succeeded{background:#e3f5e9;color:#17663a}.failed{background:#fde8e8;color:#9b1c1c}.interrupted,.running{background:#fff4d6;color:#8a5a00}
.stable{color:#17663a}.moderate{color:#8a5a00}.major{color:#9b1c1c}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px;vertical-align:-1px}
.note{color:#5b6577;font-size:12px}
#next{border-left:4px solid #2f6fde;background:#eef3fc;padding:8px 14px;margin:16px 0}#next.act{border-color:#c2410c;background:#fff1e6}
#next code{font-size:13px;background:#fff;padding:1px 5px;border:1px solid #d8dde6;border-radius:4px}
tr.changed td{background:#fff4d6}tr.changed td:first-child{font-weight:600}td .up{color:#9b1c1c}td .down{color:#17663a}
#changes li{margin:2px 0}
`;

function facts(r: RunDetail, reports: readonly FeatureReport[]): string {
  const rows: [string, string][] = [
    [
      'status',
      `<span class="badge ${escapeHtml(r.status)}">${escapeHtml(r.status)}</span>${r.dry_run ? ' (dry run, not published)' : r.published ? ' and published' : ''}`,
    ],
    ['model', escapeHtml(`${modelIdentity(r)} (sha256 ${r.model_sha256.slice(0, 16)}…) on ${r.backend}`)],
    ['trigger', escapeHtml(r.trigger + (r.resumes ? `, resumed ${r.resumes}×` : ''))],
    ['started / finished (UTC)', escapeHtml(`${r.started_at} / ${r.finished_at ?? '—'}`)],
    ['duration', escapeHtml(`${r.duration_s ?? '—'} s`)],
    ['rows', escapeHtml(`${formatCount(r.rows_scored)} scored, ${formatCount(r.rows_rejected)} rejected`)],
    ['chunks', escapeHtml(`${r.chunks_done} of ${r.chunks_total ?? '?'} done`)],
    ['drift (PSI)', psiCell(r)],
  ];
  if (r.error) rows.push(['error', escapeHtml(r.error)]);
  if (r.forced_publish)
    rows.push([
      'published by force',
      escapeHtml(`${r.forced_publish.at} by ${r.forced_publish.by}@${r.forced_publish.host}, over: ${r.forced_publish.overridden_error ?? '—'}`),
    ]);
  for (const line of formatAnalystFacts(r.analyst).filter((l) => l !== '')) rows.push([analystLabel(line), escapeHtml(line.trim())]);
  for (const f of reports) for (const [label, text] of f.htmlFacts?.(r) ?? []) rows.push([label, escapeHtml(text)]);
  for (const x of r.rejects_by_reason)
    rows.push([`rejected: ${escapeHtml(x.reason)}`, escapeHtml(`${formatCount(x.rows)}${x.column ? ` (${x.column})` : ''}`)]);
  return `<table id="facts">${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${v}</td></tr>`).join('')}</table>`;
}

/** Text naming commands, escaped, each command (with a `--force --reason "…"`) as code. */
function commandsAsCode(text: string): string {
  let html = '';
  let last = 0;
  for (const m of text.matchAll(/scorejob [a-z]+(?: \d+)?(?: --force --reason "[^"]*")?/g)) {
    html += `${escapeHtml(text.slice(last, m.index))}<code>${escapeHtml(m[0])}</code>`;
    last = m.index + m[0].length;
  }
  return html + escapeHtml(text.slice(last));
}

/**
 * What to do about this run, in the words `runs show` uses: resume, a new run, or `publish --force`
 * after review for a failure; nothing for a published run.
 */
function nextStep(r: RunDetail): string {
  const cmd = (c: string) => `<code>${escapeHtml(c)}</code>`;
  let html: string;
  let act = true;
  if (r.status === 'running') html = `In progress. Follow it with ${cmd('scorejob runs')}.`;
  else if (r.resume_command) {
    const why =
      r.error_kind === 'gate'
        ? 'A publish gate stopped this run; its scores are kept unpublished.'
        : r.status === 'interrupted'
          ? 'The run was interrupted; it is resumable.'
          : 'The run failed; the ledger recorded why (above).';
    // resume_command names one command, or two joined by words ("… once the data is fixed, or … after review").
    html = `${escapeHtml(why)} Next: ${commandsAsCode(r.resume_command)}.`;
  } else if (r.status === 'succeeded' && r.dry_run) html = `A dry run: nothing was published. To publish, start a real run: ${cmd('scorejob run')}.`;
  else if (r.status === 'succeeded') {
    act = false;
    // Only the current run's page may offer a plain rollback: on a replaced run's page it would roll back another run.
    html = r.current
      ? `Nothing to do: the run succeeded and customer_scores shows it now. To put the previous scores back, ${cmd('scorejob rollback')}.`
      : r.published
        ? `Nothing to do: the run succeeded and was published; customer_scores shows a later run now (see ${cmd('scorejob runs')}). To show this run again while its scores are kept, ${cmd(`scorejob rollback ${r.run_id}`)}.`
        : `Nothing to do: the run succeeded and was not published.`;
  } else html = `Nothing to resume: start a new run with ${cmd('scorejob run')}.`;
  return `<div id="next" class="${act ? 'act' : 'ok'}"><strong>Next step.</strong> ${html}</div>`;
}

/** What changed against the previous published run, most telling first: drift, the mean, rejects, features that moved. */
function changes(r: RunDetail): string {
  const prev = r.previous_published;
  if (!prev || !r.stats || r.stats.count === 0) return '';
  const items: string[] = [];
  const psi = r.drift?.psi;
  if (psi !== null && psi !== undefined) items.push(`Score distribution: ${psiCell(r)}.`);
  if (prev.stats && r.stats.mean !== null && prev.stats.mean !== null)
    items.push(escapeHtml(`Mean score ${formatDecimal(r.stats.mean)} (was ${formatDecimal(prev.stats.mean)}).`));
  const rejected = r.rows_scored + r.rows_rejected > 0 ? r.rows_rejected / (r.rows_scored + r.rows_rejected) : 0;
  items.push(escapeHtml(`Customers scored: ${formatCount(r.rows_scored)} (was ${formatCount(prev.rows_scored)}); rejected ${formatFraction(rejected)}.`));
  const moved = r.features ? featureChanges(r.features, prev.features) : [];
  for (const c of moved) {
    const dir = c.now > c.before ? 'up' : 'down';
    items.push(`<span class="${dir}">${escapeHtml(`${c.column}: ${c.what} ${formatFraction(c.now)} (was ${formatFraction(c.before)})`)}</span>`);
  }
  if (r.features && prev.features && moved.length === 0) items.push("No feature's NULL, out-of-range or unknown-category fraction moved notably.");
  return `<h2>What changed against run ${escapeHtml(prev.run_id)}</h2><ul id="changes">${items.map((i) => `<li>${i}</li>`).join('')}</ul>`;
}

function psiCell(r: RunDetail): string {
  const psi = r.drift?.psi;
  if (psi === null || psi === undefined) return escapeHtml(formatPsi(r.drift));
  const cls = psi < 0.1 ? 'stable' : psi < 0.25 ? 'moderate' : 'major';
  return `<span class="${cls}">${formatDecimal(psi)} — ${escapeHtml(psiVerdict(psi))}</span> against run ${escapeHtml(r.drift?.baseline_run_id ?? '')}`;
}

/** Grouped bars: this run (blue) and the previous published run (grey) per bin, same scale. */
export function histogramSvg(current: ScoreSummary['histogram'], previous: ScoreSummary['histogram'] | null | undefined, bins = 20): string {
  const a = binShares(current, bins) ?? [];
  const p = previous && previous.lo === current.lo && previous.hi === current.hi ? binShares(previous, bins) : undefined;
  const max = Math.max(1e-9, ...a, ...(p ?? []));
  const W = 1000;
  const H = 320;
  const left = 50;
  const bottom = 40;
  const plotW = W - left - 10;
  const plotH = H - bottom - 10;
  const slot = plotW / bins;
  const barW = p ? slot * 0.4 : slot * 0.8;
  const y = (share: number) => 10 + plotH - (share / max) * plotH;
  const parts: string[] = [];
  for (let t = 0; t <= 4; t++) {
    const share = (max * t) / 4;
    parts.push(`<line x1="${left}" x2="${W - 10}" y1="${y(share).toFixed(1)}" y2="${y(share).toFixed(1)}" stroke="#eceff4"/>`);
    parts.push(`<text x="${left - 6}" y="${(y(share) + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#5b6577">${formatPercent(share, 1)}</text>`);
  }
  const step = (current.hi - current.lo) / bins;
  a.forEach((share, i) => {
    const x0 = left + i * slot + slot * 0.1;
    parts.push(
      `<rect class="bar current" x="${x0.toFixed(1)}" y="${y(share).toFixed(1)}" width="${barW.toFixed(1)}" height="${(10 + plotH - y(share)).toFixed(1)}" fill="#2f6fde"><title>${(current.lo + i * step).toFixed(2)}–${(current.lo + (i + 1) * step).toFixed(2)}: ${formatPercent(share)}</title></rect>`,
    );
    if (p) {
      const ps = p[i] ?? 0;
      parts.push(
        `<rect class="bar previous" x="${(x0 + barW).toFixed(1)}" y="${y(ps).toFixed(1)}" width="${barW.toFixed(1)}" height="${(10 + plotH - y(ps)).toFixed(1)}" fill="#a7b0bf"><title>previous: ${formatPercent(ps)}</title></rect>`,
      );
    }
    if (i % 2 === 0)
      parts.push(
        `<text x="${(left + i * slot).toFixed(1)}" y="${H - bottom + 16}" font-size="11" fill="#5b6577" text-anchor="middle">${(current.lo + i * step).toFixed(2)}</text>`,
      );
  });
  parts.push(`<text x="${W - 10}" y="${H - bottom + 16}" font-size="11" fill="#5b6577" text-anchor="end">${current.hi.toFixed(2)}</text>`);
  parts.push(`<line x1="${left}" x2="${W - 10}" y1="${10 + plotH}" y2="${10 + plotH}" stroke="#5b6577"/>`);
  parts.push(`<text x="${left + plotW / 2}" y="${H - 6}" font-size="12" fill="#1d2433" text-anchor="middle">score</text>`);
  return `<svg id="histogram" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="score histogram">${parts.join('')}</svg>`;
}

function quantileTable(s: ScoreSummary, prev: ScoreSummary | null | undefined): string {
  const keys: [string, (x: ScoreSummary) => number | null][] = [
    ['count', (x) => x.count],
    ['mean', (x) => x.mean],
    ['std', (x) => x.std],
    ['min', (x) => x.min],
    ...Object.keys(s.quantiles).map((k): [string, (x: ScoreSummary) => number | null] => [k, (x) => x.quantiles[k] ?? null]),
    ['max', (x) => x.max],
  ];
  const cell = (k: string, v: number | null) => `<td class="n">${k === 'count' ? (v === null ? '—' : formatCount(v)) : formatDecimal(v)}</td>`;
  return (
    `<table id="scores"><tr><th>statistic</th><th>this run</th>${prev ? '<th>previous published run</th>' : ''}</tr>` +
    keys.map(([k, get]) => `<tr><th>${escapeHtml(k)}</th>${cell(k, get(s))}${prev ? cell(k, get(prev)) : ''}</tr>`).join('') +
    '</table>'
  );
}

function featureTable(r: RunDetail): string {
  const f = r.features;
  if (!f) return '<p class="note">No feature statistics for this run (its chunks were scored by an older scorejob).</p>';
  const prev = r.previous_published?.features ?? null;
  const before = (c: string): FeatureSummary | undefined => prev?.features.find((x) => x.column === c);
  const both = (now: string, was: string | undefined) => `${now}${prev ? ` <span class="note">(${was ?? '—'})</span>` : ''}`;
  const changed = new Set(featureChanges(f, prev).map((c) => c.column));
  const rows = f.features.map((x) => {
    const b = before(x.column);
    const range = x.min !== null || x.max !== null ? `${x.min ?? '−∞'} … ${x.max ?? '∞'}` : '—';
    return (
      `<tr${changed.has(x.column) ? ' class="changed" title="changed notably against the previous published run"' : ''}><td>${escapeHtml(x.column)}</td><td>${escapeHtml(x.transform)}</td>` +
      `<td class="n">${both(formatFraction(x.null_fraction), b && formatFraction(b.null_fraction))}</td>` +
      `<td>${escapeHtml(range)}</td>` +
      `<td class="n">${range === '—' ? '—' : both(formatFraction(x.outside_range_fraction), b && formatFraction(b.outside_range_fraction))}</td>` +
      `<td class="n">${hasCategories(x) ? both(formatFraction(x.unknown_category_fraction), b && formatFraction(b.unknown_category_fraction)) : '—'}</td></tr>`
    );
  });
  return (
    `<table id="features"><tr><th>feature</th><th>transform</th><th>NULL</th><th>training range</th><th>outside range</th><th>unknown category</th></tr>${rows.join('')}</table>` +
    `<p class="note">Fractions of the ${formatCount(f.rows)} rows read (rejected rows included)${prev ? `; the previous published run's in brackets; highlighted: a fraction that appeared, moved by half a percentage point or more, or doubled or halved` : ''}.</p>`
  );
}

/**
 * `scorejob runs show <id> --html FILE`: one self-contained page (inline CSS and SVG, no script, no
 * external resource) an analyst can attach to an email; each run feature in `reports` adds its rows and section.
 * @internal exported for tests
 */
export function renderRunHtml(r: RunDetail, opts: { reports?: readonly FeatureReport[]; generatedAt?: Date } = {}): string {
  const reports = opts.reports ?? [];
  const generatedAt = opts.generatedAt ?? new Date();
  const prev = r.previous_published;
  const title = `scorejob run ${r.run_id}: ${r.status}`;
  const body = [
    `<h1>${escapeHtml(title)}</h1>`,
    `<p class="sub">${escapeHtml(`${modelIdentity(r)} · ${formatCount(r.rows_scored)} customers scored · generated ${generatedAt.toISOString()}`)}</p>`,
    nextStep(r),
    changes(r),
    '<h2>Run</h2>',
    facts(r, reports),
  ];
  if (r.stats && r.stats.count > 0) {
    body.push(
      '<h2>Score distribution</h2>',
      `<p class="legend"><span style="background:#2f6fde"></span>run ${escapeHtml(r.run_id)}${prev?.stats ? `<span style="background:#a7b0bf"></span>previous published run ${escapeHtml(prev.run_id)}` : ''}</p>`,
      histogramSvg(r.stats.histogram, prev?.stats?.histogram),
      `<p class="note">Share of scores per bin of width ${((r.stats.histogram.hi - r.stats.histogram.lo) / 20).toFixed(2)}. PSI = Σ (aᵢ − eᵢ)·ln(aᵢ/eᵢ) over ${r.drift?.bins ?? 10} equal bins, empty bins counted as ${r.drift?.epsilon ?? 1e-4}; below 0.1 stable, 0.1–0.25 moderate shift, above 0.25 major shift. Quantiles are read off a 100-bin histogram (within 0.01).</p>`,
      quantileTable(r.stats, prev?.stats),
    );
  } else {
    body.push('<h2>Score distribution</h2><p class="note">No scores recorded for this run yet.</p>');
  }
  body.push('<h2>Features</h2>', featureTable(r));
  const outcomes = performanceHtml(r.outcomes, escapeHtml);
  if (outcomes !== '') body.push(outcomes);
  for (const f of reports) {
    const section = f.htmlSection?.(r, { escape: escapeHtml }) ?? '';
    if (section !== '') body.push(section);
  }
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${css}</style></head>
<body>
${body.join('\n')}
</body></html>
`;
}

/** Writes the page (temporary file + rename, so a mail client never attaches half of it). */
export async function writeHtmlReport(file: string, r: RunDetail, reports: readonly FeatureReport[] = []): Promise<void> {
  try {
    await writeFileAtomic(file, renderRunHtml(r, { reports }));
  } catch (err) {
    throw new UsageError(`--html: cannot write "${file}": ${(err as Error).message}`);
  }
}

/** The row label of one of formatAnalystFacts' lines on the HTML page. */
function analystLabel(line: string): string {
  if (line.includes(' first reason of ')) return 'first reason';
  if (line.startsWith('Reasons')) return 'reasons';
  return 'only new customers';
}
