import type pg from 'pg';
import { formatCount, formatDecimal, formatPercent } from '../../format.js';
import { Ledger } from '../../ledger/ledger.js';
import type { ChallengerComparison } from './challengerTypes.js';
import type { FeatureReport, HtmlKit } from '../../report/featureReport.js';
import { readPerformance, type PerformanceRow } from '../../report/performanceReport.js';
import type { RunDetail } from '../../report/runsReport.js';

/** What `runs show` reads of a champion run's challenger: its run and, once outcomes were synced, its realised figures. */
export interface ChallengerFacts {
  run_id: string;
  model_version: string;
  /** The challenger run's whole-run row of model_performance; absent until `outcomes sync` saw it. */
  performance?: PerformanceRow;
}

/**
 * The challenger in the report (docs/analysts.md "Champion and challenger"): on a champion run, how the
 * challenger scored beside it and, once outcomes matured, both models' realised figures side by side; on a
 * challenger's own run, whose challenger it is.
 */
export const challengerReport: FeatureReport = {
  name: 'challenger',
  read: readChallenger,
  analyst: (run) => ({ challenger: run.stats?.challenger ?? null }),
  showLines: (r) => {
    const lines = [...ownLines(r)];
    if (r.analyst?.challenger) lines.push('', ...formatChallenger(r.analyst.challenger));
    const beside = performanceBeside(r);
    if (beside.length > 0) lines.push('', `Realised performance beside the challenger (${outcomeWords(r)}):`, ...beside.map((l) => `  ${l}`));
    return lines;
  },
  htmlFacts: (r) =>
    [...ownLines(r), ...(r.analyst?.challenger ? formatChallenger(r.analyst.challenger) : [])].filter((l) => l !== '').map((l) => ['challenger', l.trim()]),
  htmlSection: (r, html) => performanceHtml(r, html),
};

async function readChallenger(c: pg.ClientBase, schema: string, r: RunDetail): Promise<ChallengerFacts | undefined> {
  if (r.kind === 'challenger') return undefined;
  const sibling = await new Ledger(schema).siblingOf(c, r.run_id);
  if (!sibling) return undefined;
  const performance = (await readPerformance(c, schema, sibling.run_id, r.slot))?.run.find((p) => p.band === null);
  return { run_id: sibling.run_id, model_version: sibling.model_version, ...(performance ? { performance } : {}) };
}

/** A challenger's own run: whose it is, and how it is published. */
function ownLines(r: RunDetail): string[] {
  if (r.kind !== 'challenger') return [];
  const champion = r.analyst?.champion_run_id ?? r.champion_run_id ?? '?';
  return ['', `Challenger of run ${champion}: scored beside it, never published by it (publish with \`scorejob publish ${champion} --challenger\`)`];
}

/** The challenger comparison as text lines (`runs show`, and the HTML page's rows). */
export function formatChallenger(c: ChallengerComparison): string[] {
  const num = (v: number | null, digits: number) => (v === null ? 'n/a' : v.toFixed(digits));
  return [
    `Challenger: ${c.model_name} ${c.model_version} (run ${c.run_id}), over ${formatCount(c.customers)} customers both scored`,
    `  correlation of the scores  ${num(c.correlation, 4)}`,
    `  PSI against the champion   ${num(c.psi, 4)} (over the champion's deciles)`,
    `  top-decile overlap         ${c.top_decile_overlap === null ? 'n/a' : `${(100 * c.top_decile_overlap).toFixed(1)}%`}`,
    ...(c.band_changes === null ? [] : [`  band changes               ${formatCount(c.band_changes)} customers would change band`]),
    ...(c.drift?.baseline_run_id
      ? [
          `  drift from run ${c.drift.baseline_run_id} (PSI)`.padEnd(29) +
            `champion ${num(c.drift.champion_psi, 4)}, challenger ${num(c.drift.challenger_psi, 4)}`,
        ]
      : []),
  ];
}

const columns = ['AUC', 'est. AUC', 'KS', 'Brier', 'ECE', 'lift@10%', 'coverage'] as const;

/** One model's figures in the order of `columns`. */
function figures(p: PerformanceRow): string[] {
  const num = (v: number | null, digits = 3) => (v === null ? '—' : formatDecimal(v, digits));
  return [
    num(p.auc),
    num(p.estimated_auc),
    num(p.ks),
    num(p.brier, 4),
    num(p.calibration_error, 4),
    num(p.top_decile_lift, 2),
    p.coverage === null ? '—' : formatPercent(p.coverage, 1),
  ];
}

/** The two models' rows, champion first; none until both were synced. */
function rowsBeside(r: RunDetail): { who: string; cells: string[] }[] {
  const facts = r.reports?.challenger as ChallengerFacts | undefined;
  const own = r.outcomes?.run.find((p) => p.band === null);
  if (!facts?.performance || !own) return [];
  const name = r.analyst?.challenger?.model_name;
  return [
    { who: `champion ${r.model} ${r.model_version} (run ${r.run_id})`, cells: figures(own) },
    { who: `challenger ${name === undefined ? '' : `${name} `}${facts.model_version} (run ${facts.run_id})`, cells: figures(facts.performance) },
  ];
}

function performanceBeside(r: RunDetail): string[] {
  const rows = rowsBeside(r);
  if (rows.length === 0) return [];
  const width = Math.max(...rows.map((x) => x.who.length));
  const head = `${'model'.padEnd(width)} ${columns.map((c) => c.padStart(9)).join(' ')}`;
  return [head, ...rows.map((x) => `${x.who.padEnd(width)} ${x.cells.map((c) => c.padStart(9)).join(' ')}`)];
}

/** How mature the figures are (the same outcomes for both: the challenger's window is its champion's). */
function outcomeWords(r: RunDetail): string {
  const own = r.outcomes?.run.find((p) => p.band === null);
  if (!own) return '';
  return own.mature
    ? `mature as of ${own.as_of.slice(0, 10)}, the same outcomes for both`
    : `${Math.round(own.maturity * 100)}% of the horizon elapsed: figures may still move`;
}

function performanceHtml(r: RunDetail, html: HtmlKit): string {
  const rows = rowsBeside(r);
  if (rows.length === 0) return '';
  const e = (t: string): string => html.escape(t);
  return (
    `<h2>Champion and challenger</h2><p class="note">${e(outcomeWords(r))}</p>` +
    `<table id="challenger-performance"><tr><th>model</th>${columns.map((c) => `<th>${e(c)}</th>`).join('')}</tr>` +
    rows.map((x) => `<tr><td>${e(x.who)}</td>${x.cells.map((c) => `<td class="n">${e(c)}</td>`).join('')}</tr>`).join('') +
    '</table>'
  );
}
