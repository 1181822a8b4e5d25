import type { RunDetail, RunListItem } from './runsReport.js';
import { formatForceHint, formatRunStatistics } from './formatStats.js';
import type { FeatureReport } from './featureReport.js';
import { formatPerformance } from './performanceReport.js';
import { formatCount, formatDecimal, table } from '../format.js';

/** `scorejob runs` as a table for people. */
export function formatRunList(items: readonly RunListItem[]): string {
  if (items.length === 0) return 'No runs yet. Start one with `scorejob run`.\n';
  const header = ['RUN', 'STATUS', 'KIND', 'TRIGGER', 'MODEL', 'SCORED', 'CARRIED', 'PUBLISHED', 'REJECTED', 'STARTED (UTC)', 'DURATION', 'ERROR / NEXT STEP'];
  const rows = items.map((r) => [
    r.run_id,
    r.status + (r.dry_run ? ' (dry)' : r.current ? ' (current)' : ''),
    r.kind,
    r.trigger,
    modelIdentity(r),
    formatCount(r.rows_scored),
    formatCount(r.rows_carried),
    r.published ? formatCount(r.rows_published) : '—',
    formatCount(r.rows_rejected),
    r.started_at.replace('T', ' ').slice(0, 19),
    r.duration_s === null ? '' : `${r.duration_s}s`,
    forcedNote(r) || (r.error ? `${oneLine(r.error, 100)}${r.resume_command ? ` → ${r.resume_command}` : ''}` : (r.resume_command ?? '')),
  ]);
  return table([header, ...rows].map((r) => r.map(visible))).join('\n') + '\n' + formatRollbacks(items) + formatRetires(items);
}

/** A model as its manifest names it, everywhere: name and version, a sibling run annotated with its kind and the run it was scored beside. */
export function modelIdentity(r: Pick<RunListItem, 'model' | 'model_version' | 'champion_run_id' | 'kind'>): string {
  return `${r.model} ${r.model_version}${r.champion_run_id ? ` (${r.kind} of run ${r.champion_run_id})` : ''}`;
}

/** The retires among the listed runs' publications, newest first: which model left customer_scores, with which run, who and why. */
function formatRetires(items: readonly RunListItem[]): string {
  const retires = items
    .flatMap((r) => (r.publications ?? []).filter((p) => p.kind === 'retire').map((p) => ({ ...p, run_id: r.run_id, model: r.model })))
    .sort((a, b) => b.at.localeCompare(a.at));
  if (retires.length === 0) return '';
  const lines = ['', 'Retired models (newest first):'];
  for (const p of retires) {
    lines.push(
      `  ${p.at.replace('T', ' ').slice(0, 19)} UTC  ${p.model}: run ${p.run_id} taken out of customer_scores by ${p.by}${p.reason ? `: ${oneLine(p.reason, 100)}` : ''}`,
    );
  }
  return lines.map(visible).join('\n') + '\n';
}

/** A run made current by `--force`: said in its row, with the person's reason. */
function forcedNote(r: RunListItem): string {
  const forced = (r.publications ?? []).filter((p) => p.forced).at(-1);
  return forced === undefined ? '' : `forced: ${forced.reason === null ? 'no reason recorded' : oneLine(forced.reason, 100)}`;
}

/** The rollbacks among the listed runs' publications, newest first: who put which run back, from which, and why. */
function formatRollbacks(items: readonly RunListItem[]): string {
  const rollbacks = items
    .flatMap((r) =>
      (r.publications ?? []).filter((p) => p.kind === 'rollback').map((p) => ({ ...p, run_id: r.run_id, model: r.model, current: r.current === true })),
    )
    .sort((a, b) => b.at.localeCompare(a.at));
  if (rollbacks.length === 0) return '';
  const lines = ['', 'Rollbacks (newest first):'];
  for (const p of rollbacks) {
    lines.push(
      `  ${p.at.replace('T', ' ').slice(0, 19)} UTC  ${p.model}: run ${p.from_run_id ?? '—'} -> run ${p.run_id}${p.current ? ' (current)' : ''} by ${p.by}${p.reason ? `: ${oneLine(p.reason, 100)}` : ''}`,
    );
  }
  return lines.map(visible).join('\n') + '\n';
}

/** How `runs show` names each kind of publication of a run. */
const publicationWords: Partial<Record<string, string>> = { rollback: 'put back by rollback', force: 'published by force', retire: 'retired' };

/** `scorejob runs show <id>` for people, with what each run feature in `reports` says of the run. */
export function formatRunDetail(r: RunDetail, reports: readonly FeatureReport[] = []): string {
  const lines: string[] = [];
  lines.push(`Run ${r.run_id}: ${r.status}${r.dry_run ? ' (dry run, not published)' : r.published ? ' and published' : ''}`);
  lines.push(`  trigger      ${r.trigger}${r.tick_at ? ` (tick ${r.tick_at})` : ''}${r.resumes ? `, resumed ${r.resumes}×` : ''}`);
  lines.push(`  kind         ${r.kind}`);
  lines.push(`  model        ${modelIdentity(r)} (sha256 ${r.model_sha256.slice(0, 16)}…) on ${r.backend}`);
  lines.push(`  started      ${r.started_at}   finished ${r.finished_at ?? '—'}   duration ${r.duration_s ?? '—'}s`);
  lines.push(`  host / pid   ${r.host} / ${r.pid}`);
  lines.push(
    `  rows         ${formatCount(r.rows_scored)} scored, ${formatCount(r.rows_carried)} carried, ${formatCount(r.rows_rejected)} rejected${r.published ? `; ${formatCount(r.rows_published)} published` : ''}`,
  );
  lines.push(`  chunks       ${r.chunks_done} of ${r.chunks_total ?? '?'} done`);
  if (r.error) lines.push(`  error        ${r.error}`);
  for (const p of r.publications ?? []) {
    const what = p.forced && p.kind !== 'rollback' ? 'published by force' : (publicationWords[p.kind] ?? 'published');
    const replacing = p.kind === 'retire' ? ' (its model left customer_scores)' : p.from_run_id ? ` (replacing run ${p.from_run_id})` : '';
    lines.push(`  ${what.padEnd(12)} ${p.at} by ${p.by}${replacing}${p.reason ? `: ${oneLine(p.reason, 100)}` : ''}`);
  }
  if (r.current) lines.push(`  current      customer_scores shows this run now`);
  if (r.resume_command) lines.push(`  next step    ${r.resume_command}`);
  // The failures a resume took over: the error line above shows only the current one.
  const earlier = r.status === 'failed' || r.status === 'interrupted' ? r.failures.slice(0, -1) : r.failures;
  if (earlier.length > 0) {
    lines.push('', r.status === 'succeeded' ? 'Failures before it succeeded (oldest first):' : 'Earlier failures (oldest first):');
    for (const f of earlier)
      lines.push(`  ${f.at.replace('T', ' ').slice(0, 19)} UTC  ${f.status}${f.kind ? ` (${f.kind})` : ''}: ${oneLine(f.error ?? '—', 200)}`);
  }
  if (r.rejects_by_reason.length > 0) {
    lines.push('', 'Rejected rows by reason:');
    for (const x of r.rejects_by_reason) lines.push(`  ${x.reason}${x.column ? ` (${x.column})` : ''}: ${formatCount(x.rows)}`);
  }
  if (r.stats && r.stats.count > 0) {
    const s = r.stats;
    const prev = r.previous_published?.stats ?? null;
    lines.push('', `Scores${prev ? ` (previous published run ${r.previous_published?.run_id} in brackets)` : ''}:`);
    const pair = (a: number | null, b: number | null | undefined) => (prev ? `${formatDecimal(a)} (${formatDecimal(b)})` : formatDecimal(a));
    lines.push(`  mean ${pair(s.mean, prev?.mean)}   std ${pair(s.std, prev?.std)}   min ${pair(s.min, prev?.min)}   max ${pair(s.max, prev?.max)}`);
    lines.push(
      `  quantiles ${Object.entries(s.quantiles)
        .map(([k, v]) => `${k} ${pair(v, prev?.quantiles[k])}`)
        .join('  ')}`,
    );
  } else if (r.stats) {
    // No score to describe: never a mean or std of 0.
    lines.push('', `Scores: none${r.rows_rejected > 0 ? ' (every row was rejected)' : ''}`);
  }
  lines.push(...formatRunStatistics(r));
  if (r.outcomes) lines.push(...formatPerformance(r.outcomes));
  for (const f of reports) lines.push(...(f.showLines?.(r) ?? []));
  lines.push(...formatForceHint(r));
  // A chunk that failed a shared run for good comes first: the one to look at.
  const failing = r.chunks.filter((c) => c.status !== 'done' || c.attempts > 1).sort((a, b) => Number(b.failed === true) - Number(a.failed === true));
  if (failing.length > 0) {
    lines.push('', 'Chunks not done or retried:');
    for (const c of failing.slice(0, 20)) {
      const by = c.claim_host ? ` (last by pid ${c.claim_pid} on ${c.claim_host})` : '';
      lines.push(
        `  #${c.chunk_no} (${c.key_lo ?? '-∞'}, ${c.key_hi ?? '∞'}] ${c.failed ? 'failed' : c.status}, ${c.attempts} attempt(s)${by}${c.last_error ? `: ${oneLine(c.last_error, 120)}` : ''}`,
      );
    }
    if (failing.length > 20) lines.push(`  … and ${failing.length - 20} more`);
  }
  lines.push(...formatWorkers(r.chunks));
  return lines.map(visible).join('\n') + '\n';
}

/** A shared run's workers (src/workers/claimLoop.ts): the chunks, rows and scoring time of each, from the ledger. */
function formatWorkers(chunks: RunDetail['chunks']): string[] {
  const by = new Map<string, { chunks: number; rows: number; ms: number }>();
  for (const c of chunks) {
    if (!c.claim_host || c.status !== 'done') continue;
    const key = `pid ${c.claim_pid} on ${c.claim_host}`;
    const w = by.get(key) ?? { chunks: 0, rows: 0, ms: 0 };
    w.chunks++;
    w.rows += (c.rows_scored ?? 0) + (c.rows_rejected ?? 0);
    w.ms += c.duration_ms ?? 0;
    by.set(key, w);
  }
  if (by.size === 0) return [];
  const lines = ['', `Workers (${by.size}):`];
  for (const [who, w] of by)
    lines.push(`  ${who}: ${formatCount(w.chunks)} chunk(s), ${formatCount(w.rows)} rows, ${(w.ms / 1000).toFixed(1)} s in its chunks`);
  return lines;
}

/**
 * Text from the ledger as it may safely reach a terminal: control characters (ESC, BEL, CR, newline, …)
 * and bidirectional overrides in a model's name, an error or a column name are shown escaped (`\x1b`,
 * `\u{202e}`), never sent raw, so that a manifest cannot recolour, rewrite or hide what `runs` prints.
 */
export function visible(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ');
  return flat.length > max ? flat.slice(0, max - 1) + '…' : flat;
}
