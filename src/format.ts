/**
 * How scorejob shows numbers and tables to people: one place, so that `runs`, `runs show`, the HTML page,
 * `model inspect`, the progress line and the log messages agree. Each function returns exactly the text
 * its callers printed before it was shared.
 */

const counts = new Intl.NumberFormat('en-US');

/** What a missing figure shows as. */
export const missing = '—';

/** A count with thousands separators: 1234567 -> "1,234,567". */
export function formatCount(n: number): string {
  return counts.format(n);
}

/** A number with a fixed number of decimals, or "—" when there is none: 0.31 -> "0.3100". */
export function formatDecimal(v: number | null | undefined, digits = 4): string {
  return v === null || v === undefined ? missing : v.toFixed(digits);
}

/** A ratio as a percentage: 0.0196 -> "1.96%"; undefined -> "—". */
export function formatPercent(ratio: number, digits?: number): string;
export function formatPercent(ratio: number | undefined, digits?: number): string;
export function formatPercent(ratio: number | undefined, digits = 2): string {
  return ratio === undefined ? missing : `${(ratio * 100).toFixed(digits)}%`;
}

/** A fraction of rows as a percentage; a tiny one keeps two more decimals so that it does not read as 0.00%: 0.000003 -> "0.0003%". */
export function formatFraction(x: number | undefined): string {
  return formatPercent(x, x !== undefined && x > 0 && x < 0.0001 ? 4 : 2);
}

/** Milliseconds as seconds with one decimal: 12345 -> "12.3 s". */
export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A long wait in milliseconds, coarsely: "45s", "5m03s", "2h07m". */
export function formatDuration(ms: number): string {
  const m = Math.floor(ms / 60_000);
  if (m < 1) return `${Math.round(ms / 1000)}s`;
  return m >= 60 ? `${Math.floor(m / 60)}h${pad2(m % 60)}m` : `${m}m${pad2(Math.floor((ms % 60_000) / 1000))}s`;
}

/** Seconds as a clock: 75 -> "1:15", 3725 -> "1:02:05". */
export function formatClock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}:${pad2(m)}:${pad2(s % 60)}` : `${m}:${pad2(s % 60)}`;
}

/** A file size: "512 B", "3.4 KiB", "1.2 MiB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/**
 * Left-aligned text columns, two spaces apart, each line starting with `indent` and without trailing
 * blanks. `rule`: a line of dashes under the first row (a header). Widths are in UTF-16 code units.
 */
export function table(rows: readonly (readonly string[])[], options: { indent?: string; rule?: boolean } = {}): string[] {
  const indent = options.indent ?? '';
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  const line = (row: readonly string[]) => `${indent}${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')}`.trimEnd();
  const lines = rows.map(line);
  if (options.rule && lines.length > 0) lines.splice(1, 0, line(widths.map((w) => '-'.repeat(w))));
  return lines;
}
