import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log.js';
import type { ErrorKind } from '../ledger/ledger.js';

/**
 * The facts of a run's end that `--metrics-file` exports, in the Prometheus text format for
 * node_exporter's textfile collector. Rendered by hand: a dozen gauges written once per run need no
 * registry, and prom-client's global default registry and collectors would only be in the way.
 */
export interface RunMetrics {
  /** The model (manifest `name`): a `model` label on every sample, so several models' files can sit side by side. */
  model: string;
  runId: string | null;
  status: 'succeeded' | 'failed' | 'interrupted';
  errorKind: ErrorKind | null;
  published: boolean;
  dryRun: boolean;
  /** Published by `scorejob publish --force` over a failed gate. */
  forced: boolean;
  durationMs: number;
  rowsScored: number;
  rowsRejected: number;
  /** Rows this process scored (a resume: fewer than `rowsScored`); the rate is of these. Default `rowsScored`. */
  rowsScoredNow?: number | undefined;
  psi: number | null;
  finishedAt: Date;
  /** Finish time of the latest run that succeeded and published (kept from the ledger on failure). */
  lastSuccessAt: Date | null;
}

const statuses = ['succeeded', 'failed', 'interrupted'] as const;
const errorKinds: readonly ErrorKind[] = ['data', 'model', 'database', 'gate', 'interrupted', 'internal'];

interface Sample {
  labels?: Record<string, string>;
  value: number;
}

function family(name: string, help: string, samples: Sample[], base: Record<string, string>): string {
  if (samples.length === 0) return '';
  const lines = [`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} gauge`];
  for (const s of samples) {
    const all = { ...base, ...s.labels };
    const labels = Object.keys(all).length > 0 ? `{${Object.entries(all).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}` : '';
    lines.push(`${name}${labels} ${formatValue(s.value)}`);
  }
  return lines.join('\n') + '\n';
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

const one = (v: number | null | undefined): Sample[] => (v === null || v === undefined ? [] : [{ value: v }]);
const flag = (b: boolean): Sample[] => [{ value: b ? 1 : 0 }];

/** The metrics file's content. Gauges with no value (no PSI, never a success) are left out, not faked. */
export function renderMetrics(m: RunMetrics): string {
  const seconds = m.durationMs / 1000;
  const total = m.rowsScored + m.rowsRejected;
  // Every sample carries the run's model, so several models' files can sit side by side.
  const gauge = (name: string, help: string, samples: Sample[]) => family(name, help, samples, { model: m.model });
  return [
    gauge('scorejob_last_run_success', '1 if the last run succeeded, 0 if it failed or was interrupted.', flag(m.status === 'succeeded')),
    gauge('scorejob_last_run_status', 'Status of the last run: 1 for its status, 0 for the others.', statuses.map((s) => ({ labels: { status: s }, value: s === m.status ? 1 : 0 }))),
    gauge('scorejob_last_run_failure', 'Why the last run failed: 1 for its error kind (gate: a publish gate stopped it), 0 for the others.', errorKinds.map((k) => ({ labels: { kind: k }, value: k === m.errorKind ? 1 : 0 }))),
    gauge('scorejob_last_run_id', 'Run id of the last run (scorejob runs show <id>).', one(m.runId === null ? null : Number(m.runId))),
    gauge('scorejob_last_run_published', '1 if the last run published its scores to customer_scores.', flag(m.published)),
    gauge('scorejob_last_run_dry_run', '1 if the last run was a dry run.', flag(m.dryRun)),
    gauge('scorejob_last_run_forced_publish', '1 if the last run was published by `scorejob publish --force` over a failed gate.', flag(m.forced)),
    gauge('scorejob_last_run_finish_timestamp_seconds', 'When the last run ended (Unix time).', one(m.finishedAt.getTime() / 1000)),
    gauge('scorejob_last_run_duration_seconds', 'Wall time of the last run in this process.', one(Math.round(seconds * 1000) / 1000)),
    gauge('scorejob_last_run_rows_scored', 'Rows scored by the last run.', one(m.rowsScored)),
    gauge('scorejob_last_run_rows_rejected', 'Rows the last run could not score (score_rejects).', one(m.rowsRejected)),
    gauge('scorejob_last_run_reject_ratio', 'Rejected / (scored + rejected) of the last run.', one(total === 0 ? 0 : m.rowsRejected / total)),
    gauge('scorejob_last_run_rows_per_second', 'Rows scored per second by the last run in this process (a resume: the rows it scored).', one(seconds > 0 ? Math.round((m.rowsScoredNow ?? m.rowsScored) / seconds) : 0)),
    gauge('scorejob_last_run_psi', "Population stability index of the last run's scores against the previous published run (absent without one).", one(m.psi)),
    gauge('scorejob_last_success_timestamp_seconds', 'When the latest run that succeeded and published its scores finished (Unix time; dry runs excluded).', one(m.lastSuccessAt === null ? null : m.lastSuccessAt.getTime() / 1000)),
  ].join('');
}

/**
 * Writes the file atomically: a temporary file in the same directory (so the rename cannot cross
 * file systems), then rename over the target. The collector reads `*.prom` only, so it never sees
 * the temporary name, and never a half-written file.
 */
export async function writeMetricsFile(path: string, content: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, content, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** The value the previous metrics file held, for when the ledger cannot be asked (the database is gone). */
async function previousLastSuccess(path: string): Promise<Date | null> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const m = /^scorejob_last_success_timestamp_seconds(?:\{[^}]*\})? (\S+)$/m.exec(text);
  const v = m ? Number(m[1]) : NaN;
  return Number.isFinite(v) ? new Date(v * 1000) : null;
}

/**
 * Exports a run's end. Never fails the run: a metrics problem is logged. The last success time comes
 * from the ledger, or from the previous file when the ledger cannot be reached.
 */
export async function exportRunMetrics(
  path: string | undefined,
  facts: Omit<RunMetrics, 'lastSuccessAt' | 'finishedAt'>,
  ledgerLookup: () => Promise<Date | null>,
  log: Logger,
): Promise<void> {
  if (!path) return;
  try {
    const last = await ledgerLookup().catch(() => previousLastSuccess(path));
    await writeMetricsFile(path, renderMetrics({ ...facts, finishedAt: new Date(), lastSuccessAt: last }));
    log.debug({ metrics_file: path }, `metrics written to ${path}`);
  } catch (err) {
    log.warn({ metrics_file: path, err: (err as Error).message }, `could not write the metrics file ${path}: ${(err as Error).message}`);
  }
}
