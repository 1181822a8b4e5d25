import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../files.js';
import type { Logger } from '../log.js';
import type { ErrorKind } from '../ledger/ledger.js';
import type { MetricFamily, MetricSample } from '../report/featureReport.js';

/**
 * The facts of a run's end that `--metrics-file` exports, in the Prometheus text format for
 * node_exporter's textfile collector.
 */
export interface RunMetrics {
  /** The model (manifest `name`): a `model` label on every sample, so several models' files can sit side by side. */
  model: string;
  runId: string | null;
  /** refused: the command stopped before a run started (exit 2: a bad flag, model or source; nothing written). */
  status: 'succeeded' | 'failed' | 'interrupted' | 'refused';
  /** config: a refusal's kind (a run's kinds are the ledger's). */
  errorKind: ErrorKind | 'config' | null;
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
  /** Gauges the run's features add (src/report/featureReport.ts), rendered after the run's own. */
  features?: readonly MetricFamily[] | undefined;
}

const statuses = ['succeeded', 'failed', 'interrupted', 'refused'] as const;
const errorKinds: readonly RunMetrics['errorKind'][] = ['data', 'model', 'database', 'gate', 'input_check', 'interrupted', 'internal', 'config'];

type Sample = MetricSample;

const one = (v: number | null | undefined): Sample[] => (v === null || v === undefined ? [] : [{ value: v }]);
const flag = (b: boolean): Sample[] => [{ value: b ? 1 : 0 }];

/**
 * The metrics file's content, rendered by prom-client in a registry of its own (not the global one, and
 * no default collectors: the file holds this run's facts only). Gauges with no value (no PSI, never a
 * success) are left out, not faked: a gauge is registered only when it has a sample.
 * @internal exported for tests
 */
export async function renderMetrics(m: RunMetrics): Promise<string> {
  return (await metricsRegistry(m)).metrics();
}

/** The run's gauges in a registry of their own (what the file holds and the Pushgateway gets). */
async function metricsRegistry(m: RunMetrics): Promise<import('prom-client').Registry> {
  const seconds = m.durationMs / 1000;
  const total = m.rowsScored + m.rowsRejected;
  // Imported here, not at start-up: only a run with --metrics-file pays its ~35 ms of loading.
  const { Gauge, Registry } = await import('prom-client');
  const registry = new Registry();
  // Every sample carries the run's model, so several models' files can sit side by side.
  const gauge = (name: string, help: string, samples: Sample[]): void => {
    if (samples.length === 0) return;
    const labelNames = ['model', ...Object.keys(samples[0]?.labels ?? {})];
    const g = new Gauge({ name, help, labelNames, registers: [registry] });
    for (const s of samples) g.set({ model: m.model, ...s.labels }, s.value);
  };
  gauge('scorejob_last_run_success', '1 if the last run succeeded, 0 if it failed, was interrupted or was refused.', flag(m.status === 'succeeded'));
  gauge(
    'scorejob_last_run_status',
    'Status of the last run (refused: stopped before it started, exit 2): 1 for its status, 0 for the others.',
    statuses.map((s) => ({ labels: { status: s }, value: s === m.status ? 1 : 0 })),
  );
  gauge(
    'scorejob_last_run_failure',
    'Why the last run failed: 1 for its error kind (gate: a publish gate stopped it; config: refused at start-up), 0 for the others.',
    errorKinds.map((k) => ({ labels: { kind: String(k) }, value: k === m.errorKind ? 1 : 0 })),
  );
  gauge('scorejob_last_run_id', 'Run id of the last run (scorejob runs show <id>).', one(m.runId === null ? null : Number(m.runId)));
  gauge('scorejob_last_run_published', '1 if the last run published its scores to customer_scores.', flag(m.published));
  gauge('scorejob_last_run_dry_run', '1 if the last run was a dry run.', flag(m.dryRun));
  gauge('scorejob_last_run_forced_publish', '1 if the last run was published by `scorejob publish --force` over a failed gate.', flag(m.forced));
  gauge('scorejob_last_run_finish_timestamp_seconds', 'When the last run ended (Unix time).', one(m.finishedAt.getTime() / 1000));
  gauge('scorejob_last_run_duration_seconds', 'Wall time of the last run in this process.', one(Math.round(seconds * 1000) / 1000));
  gauge('scorejob_last_run_rows_scored', 'Rows scored by the last run.', one(m.rowsScored));
  gauge('scorejob_last_run_rows_rejected', 'Rows the last run could not score (score_rejects).', one(m.rowsRejected));
  gauge('scorejob_last_run_reject_ratio', 'Rejected / (scored + rejected) of the last run.', one(total === 0 ? 0 : m.rowsRejected / total));
  gauge(
    'scorejob_last_run_rows_per_second',
    'Rows scored per second by the last run in this process (a resume: the rows it scored).',
    one(seconds > 0 ? Math.round((m.rowsScoredNow ?? m.rowsScored) / seconds) : 0),
  );
  gauge('scorejob_last_run_psi', "Population stability index of the last run's scores against the previous published run (absent without one).", one(m.psi));
  gauge(
    'scorejob_last_success_timestamp_seconds',
    'When the latest run that succeeded and published its scores finished (Unix time; dry runs excluded).',
    one(m.lastSuccessAt === null ? null : m.lastSuccessAt.getTime() / 1000),
  );
  for (const f of m.features ?? []) gauge(f.name, f.help, f.samples);
  return registry;
}

/**
 * Writes the file atomically (the collector reads `*.prom` only, and never a half-written file), readable by the collector.
 * @internal exported for tests
 */
export async function writeMetricsFile(path: string, content: string): Promise<void> {
  await writeFileAtomic(path, content, { mode: 0o644 });
}

/** Where a run's end is exported: the textfile collector's file, a Pushgateway, both or neither. */
export interface MetricsTarget {
  file?: string | undefined;
  push?: string | undefined;
}

/** The Pushgateway's job label; the group is `job="scorejob", model=NAME`, one per model. */
export const pushJob = 'scorejob';

/** The last success time in a metrics text (the previous file, or the Pushgateway's /metrics for this model's group). */
function lastSuccessIn(text: string, model?: string): Date | null {
  for (const m of text.matchAll(/^scorejob_last_success_timestamp_seconds(\{[^}]*\})? (\S+)$/gm)) {
    const labels = m[1] ?? '';
    if (model !== undefined && !(labels.includes(`job="${pushJob}"`) && labels.includes(`model="${model.replace(/["\\]/g, '\\$&')}"`))) continue;
    const v = Number(m[2]);
    if (Number.isFinite(v)) return new Date(v * 1000);
  }
  return null;
}

/** The value the previous export held, for when the ledger cannot be asked (the database is gone). */
async function previousLastSuccess(target: MetricsTarget, model: string): Promise<Date | null> {
  if (target.file) return lastSuccessIn(await readFile(target.file, 'utf8').catch(() => ''));
  if (!target.push) return null;
  const text = await fetch(`${target.push}/metrics`, { signal: AbortSignal.timeout(10_000) }).then(
    (r) => (r.ok ? r.text() : ''),
    () => '',
  );
  return lastSuccessIn(text, model);
}

/** The Pushgateway's URL for a log line: a user and password in it (basic auth) are left out. */
function withoutCredentials(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return u.toString().replace(/\/+$/, '');
}

/**
 * PUT to the Pushgateway: the group `job="scorejob", model=NAME` is replaced as a whole, so a stale
 * success never outlives a later failure or refusal.
 */
async function pushMetrics(url: string, m: RunMetrics): Promise<void> {
  const { Pushgateway } = await import('prom-client');
  const registry = await metricsRegistry(m);
  await new Pushgateway(url, { timeout: 10_000 }, registry).push({ jobName: pushJob, groupings: { model: m.model } });
}

/** A model's realised performance as `scorejob outcomes sync --metrics-file` exports it. */
export interface ModelPerformanceMetrics {
  model: string;
  /** Realised AUC of the model's newest mature run. */
  auc: number | null;
  /** Its expected calibration error. */
  calibrationError: number | null;
}

/** `scorejob_model_auc` and `scorejob_model_calibration_error` by model; a figure not known yet is left out. */
export async function renderModelPerformanceMetrics(m: ModelPerformanceMetrics): Promise<string> {
  const { Gauge, Registry } = await import('prom-client');
  const registry = new Registry();
  const gauge = (name: string, help: string, value: number | null): void => {
    if (value === null) return;
    new Gauge({ name, help, labelNames: ['model'], registers: [registry] }).set({ model: m.model }, value);
  };
  gauge('scorejob_model_auc', "Realised AUC of the model's newest run whose outcome horizon has passed (scorejob outcomes sync).", m.auc);
  gauge('scorejob_model_calibration_error', 'Expected calibration error (score deciles) of the same run.', m.calibrationError);
  return registry.metrics();
}

/**
 * Exports a run's end. Never fails the run: a metrics problem is logged. The last success time comes
 * from the ledger, or from the previous export when the ledger cannot be reached.
 */
export async function exportRunMetrics(
  target: MetricsTarget,
  facts: Omit<RunMetrics, 'lastSuccessAt' | 'finishedAt'>,
  ledgerLookup: () => Promise<Date | null>,
  log: Logger,
): Promise<void> {
  if (!target.file && !target.push) return;
  const last = await ledgerLookup().catch(() => previousLastSuccess(target, facts.model));
  const m = { ...facts, finishedAt: new Date(), lastSuccessAt: last };
  if (target.file) {
    try {
      await writeMetricsFile(target.file, await renderMetrics(m));
      log.debug({ metrics_file: target.file }, `metrics written to ${target.file}`);
    } catch (err) {
      log.warn({ metrics_file: target.file, err: (err as Error).message }, `could not write the metrics file ${target.file}: ${(err as Error).message}`);
    }
  }
  if (target.push) {
    const shown = withoutCredentials(target.push);
    try {
      await pushMetrics(target.push, m);
      log.debug({ metrics_push: shown }, `metrics pushed to ${shown} (job="${pushJob}", model="${m.model}")`);
    } catch (err) {
      log.warn({ metrics_push: shown, err: (err as Error).message }, `could not push the metrics to the Pushgateway ${shown}: ${(err as Error).message}`);
    }
  }
}

/**
 * A `run` refused before it started (exit 2: a bad flag, model, manifest or source column; nothing
 * written) is an outcome too: without this, the export would keep the previous run's success and only
 * a staleness alert would notice. The last success time is kept from the previous export.
 */
export async function exportRefusal(target: MetricsTarget, model: string, log: Logger): Promise<void> {
  const facts = {
    model,
    runId: null,
    status: 'refused',
    errorKind: 'config',
    published: false,
    dryRun: false,
    forced: false,
    durationMs: 0,
    rowsScored: 0,
    rowsRejected: 0,
    psi: null,
  } as const;
  await exportRunMetrics(target, facts, () => previousLastSuccess(target, model), log);
}
