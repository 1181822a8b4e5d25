import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.js';
import { exportRunMetrics, renderMetrics, writeMetricsFile, type RunMetrics } from '../../../src/observe/metrics.js';
import { parsePrometheus } from '../../helpers/prometheus.js';

const silent = createLogger({ level: 'silent', pretty: false });

const failed: RunMetrics = {
  model: 'customer-value',
  runId: '42',
  status: 'failed',
  errorKind: 'gate',
  published: false,
  dryRun: false,
  forced: false,
  durationMs: 12_500,
  rowsScored: 1000,
  rowsRejected: 20,
  psi: 0.31,
  finishedAt: new Date('2026-03-01T02:00:00Z'),
  lastSuccessAt: new Date('2026-02-01T02:03:04.5Z'),
};

describe('metrics file', () => {
  it("carries the run features' gauges after the run's own, each with the model label; a family without samples is left out", async () => {
    const text = await renderMetrics({
      ...failed,
      features: [
        { name: 'scorejob_feature_psi', help: 'PSI.', samples: [{ labels: { feature: 'region', against: 'baseline' }, value: 0.31 }] },
        { name: 'scorejob_model_auc', help: 'AUC.', samples: [{ value: 0.81 }] },
        { name: 'scorejob_empty', help: 'none.', samples: [] },
      ],
    });
    const m = parsePrometheus(text);
    expect(m.get('scorejob_feature_psi', { model: 'customer-value', feature: 'region', against: 'baseline' })).toBe(0.31);
    expect(m.get('scorejob_model_auc', { model: 'customer-value' })).toBe(0.81);
    expect(text).not.toContain('scorejob_empty');
    expect(text.indexOf('scorejob_last_run_success')).toBeLessThan(text.indexOf('scorejob_feature_psi'));
  });

  it('renders every figure as a gauge in the Prometheus text format', async () => {
    const m = parsePrometheus(await renderMetrics(failed));
    expect(m.get('scorejob_last_run_success')).toBe(0);
    expect(m.get('scorejob_last_run_status', { status: 'failed' })).toBe(1);
    expect(m.get('scorejob_last_run_status', { status: 'succeeded' })).toBe(0);
    expect(m.get('scorejob_last_run_failure', { kind: 'gate' })).toBe(1);
    expect(m.get('scorejob_last_run_failure', { kind: 'database' })).toBe(0);
    expect(m.get('scorejob_last_run_id')).toBe(42);
    expect(m.get('scorejob_last_run_duration_seconds')).toBe(12.5);
    expect(m.get('scorejob_last_run_rows_scored')).toBe(1000);
    expect(m.get('scorejob_last_run_rows_rejected')).toBe(20);
    expect(m.get('scorejob_last_run_reject_ratio')).toBeCloseTo(20 / 1020, 12);
    expect(m.get('scorejob_last_run_rows_per_second')).toBe(80);
    expect(m.get('scorejob_last_run_psi')).toBe(0.31);
    expect(m.get('scorejob_last_run_finish_timestamp_seconds')).toBe(Date.parse('2026-03-01T02:00:00Z') / 1000);
    expect(m.get('scorejob_last_success_timestamp_seconds')).toBe(Date.parse('2026-02-01T02:03:04.5Z') / 1000);
    for (const s of m.samples) expect(m.types.get(s.name)).toBe('gauge');
  });

  it('leaves out what has no value (no PSI, never a success) instead of faking it', async () => {
    const m = parsePrometheus(await renderMetrics({ ...failed, psi: null, lastSuccessAt: null, runId: null }));
    expect(m.get('scorejob_last_run_psi')).toBeUndefined();
    expect(m.get('scorejob_last_success_timestamp_seconds')).toBeUndefined();
    expect(m.types.has('scorejob_last_run_psi')).toBe(false);
  });

  it('the test parser refuses what the collector would', () => {
    expect(() => parsePrometheus('a 1')).toThrow(/newline/);
    expect(() => parsePrometheus('a{b="c} 1\n')).toThrow(/not a sample/);
    expect(() => parsePrometheus('a one\n')).toThrow(/not a sample/);
    expect(() => parsePrometheus('a 1\n# TYPE a gauge\n')).toThrow(/TYPE after samples/);
    expect(() => parsePrometheus('a 1\nb 1\na 2\n')).toThrow(/not together/);
  });

  it('is replaced atomically: a temporary file in the same directory, renamed; nothing left behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sj-metrics-'));
    const file = join(dir, 'scorejob.prom');
    await writeFile(file, 'old\n');
    await writeMetricsFile(file, 'new 1\n');
    expect(await readFile(file, 'utf8')).toBe('new 1\n');
    expect(await readdir(dir)).toEqual(['scorejob.prom']);
  });

  it('keeps the last success time of the previous file when the ledger cannot be asked', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sj-metrics-'));
    const file = join(dir, 'scorejob.prom');
    await writeFile(file, await renderMetrics(failed));
    const { lastSuccessAt: _l, finishedAt: _f, ...facts } = failed;
    await exportRunMetrics({ file }, { ...facts, errorKind: 'database' }, () => Promise.reject(new Error('connection lost')), silent);
    const m = parsePrometheus(await readFile(file, 'utf8'));
    expect(m.get('scorejob_last_run_failure', { kind: 'database' })).toBe(1);
    expect(m.get('scorejob_last_success_timestamp_seconds')).toBe(Date.parse('2026-02-01T02:03:04.5Z') / 1000);
  });

  it('a metrics problem never fails the run: it is logged', async () => {
    const { lastSuccessAt: _l, finishedAt: _f, ...facts } = failed;
    await expect(exportRunMetrics({ file: '/nonexistent-dir/x.prom' }, facts, async () => null, silent)).resolves.toBeUndefined();
  });
});
