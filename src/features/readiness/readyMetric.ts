import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../files.js';
import type { Logger } from '../../log.js';
import { pushJob, type MetricsTarget } from '../../observe/metrics.js';

/** What the readiness check found: ready, not ready yet, or not ready past `--ready-deadline`. */
export type ReadyState = 'ready' | 'not_ready' | 'stale';

const gaugeNames = ['scorejob_source_ready', 'scorejob_source_stale'];

/** The two gauges in the Prometheus text format, each with the model label. */
async function render(model: string, state: ReadyState): Promise<import('prom-client').Registry> {
  const { Gauge, Registry } = await import('prom-client');
  const registry = new Registry();
  const ready = new Gauge({
    name: 'scorejob_source_ready',
    help: '1 if source.ready_when held at the last check, 0 if not (the run waited: exit 75, or failed past --ready-deadline).',
    labelNames: ['model'],
    registers: [registry],
  });
  ready.set({ model }, state === 'ready' ? 1 : 0);
  const stale = new Gauge({
    name: 'scorejob_source_stale',
    help: '1 if the source was still not ready past --ready-deadline after the tick (a stale_source failure).',
    labelNames: ['model'],
    registers: [registry],
  });
  stale.set({ model }, state === 'stale' ? 1 : 0);
  return registry;
}

/** The text without the readiness gauges' lines (HELP, TYPE, samples). */
function withoutGauges(text: string): string {
  const ours = (line: string) =>
    gaugeNames.some(
      (g) => line === g || line.startsWith(`${g} `) || line.startsWith(`${g}{`) || line.startsWith(`# HELP ${g} `) || line.startsWith(`# TYPE ${g} `),
    );
  return text
    .split('\n')
    .filter((line) => line !== '' && !ours(line))
    .map((line) => `${line}\n`)
    .join('');
}

/**
 * Exports the readiness gauges beside what the target already holds: the metrics file keeps its other
 * lines (the last run's facts), the Pushgateway gets a POST, which replaces only these gauges of the
 * group. A run's own export later replaces the whole file or group, so the gauges then drop out until
 * the next check that exports them. Never fails the run: a problem is logged.
 */
export async function exportSourceReady(target: MetricsTarget, model: string, state: ReadyState, log: Logger): Promise<void> {
  if (!target.file && !target.push) return;
  const registry = await render(model, state);
  if (target.file) {
    try {
      const previous = await readFile(target.file, 'utf8').catch(() => '');
      await writeFileAtomic(target.file, withoutGauges(previous) + (await registry.metrics()), { mode: 0o644 });
    } catch (err) {
      log.warn({ metrics_file: target.file, err: (err as Error).message }, `could not write the metrics file ${target.file}: ${(err as Error).message}`);
    }
  }
  if (target.push) {
    try {
      const { Pushgateway } = await import('prom-client');
      await new Pushgateway(target.push, { timeout: 10_000 }, registry).pushAdd({ jobName: pushJob, groupings: { model } });
    } catch (err) {
      log.warn({ err: (err as Error).message }, `could not push the readiness gauge to the Pushgateway: ${(err as Error).message}`);
    }
  }
}
