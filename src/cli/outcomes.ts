import type { Command } from 'commander';
import { shippedModelDir } from '../config.js';
import type { Pool } from '../db/pool.js';
import { withClient } from '../db/sql.js';
import { UsageError } from '../errors.js';
import { action } from './action.js';
import { withSession } from '../db/session.js';
import { model, option, read } from './options.js';

/** `--as-of`: an ISO 8601 time (a date alone is midnight UTC). */
export function parseAsOf(value: string): Date {
  const t = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(t))
    throw new UsageError(`--as-of: "${value}" is not a time: give ISO 8601, e.g. 2026-03-31 or 2026-03-31T12:00:00Z`);
  return new Date(t);
}

/** `scorejob outcomes sync`: realised performance of kept runs once their outcomes matured. */
export function registerOutcomes(program: Command): void {
  const outcomes = program.command('outcomes').description("join kept runs' scores to the outcomes that followed them (docs/outcomes.md)");
  outcomes
    .command('sync')
    .description(
      'join each kept run of the model to its matured outcomes (manifest outcomes) and store realised and estimated performance per run and band (view model_performance)',
    )
    .addOption(option(model, `model directory whose manifest declares outcomes; its name selects the runs; default: the shipped model`))
    .option('--as-of <time>', 'count outcomes up to this time (ISO 8601), to replay a review; default: now')
    .option(
      '--metrics-file <path>',
      "write scorejob_model_auc and scorejob_model_calibration_error of the model's newest mature run (Prometheus textfile collector)",
    )
    .action(
      action(
        async (ctx, cmd: Command) => {
          const flags = cmd.opts<{ asOf?: string; metricsFile?: string }>();
          const asOf = flags.asOf === undefined ? undefined : parseAsOf(flags.asOf);
          const modelDir = read(cmd, model) ?? shippedModelDir;
          const { syncOutcomes } = await import('../features/outcomes/index.js');
          await withSession(ctx.config, { client: false }, async ({ pool }) => {
            const runs = await syncOutcomes(pool, { schema: ctx.config.schema, modelDir, asOf, log: ctx.log });
            for (const r of runs) {
              const auc = r.auc === null || r.auc === undefined ? '' : `, AUC ${r.auc.toFixed(3)}`;
              const covered = r.withOutcome === undefined ? '' : `, ${r.withOutcome} customers with an outcome`;
              process.stdout.write(`run ${r.runId}: ${Math.round(r.maturity * 100)}% mature${covered}${auc} (${r.outcome})\n`);
            }
            if (runs.length === 0) process.stdout.write('no kept published runs of the model to sync\n');
            if (flags.metricsFile !== undefined) await exportPerformance(pool, ctx.config.schema, modelDir, flags.metricsFile);
          });
        },
        { quiet: true },
      ),
    );
}

async function exportPerformance(pool: Pool, schema: string, modelDir: string, file: string): Promise<void> {
  const { latestMaturePerformance, readOutcomesManifest } = await import('../features/outcomes/index.js');
  const { renderModelPerformanceMetrics, writeMetricsFile } = await import('../observe/metrics.js');
  const name = (await readOutcomesManifest(modelDir)).name;
  const latest = await withClient(pool, (c) => latestMaturePerformance(c, schema, name));
  await writeMetricsFile(
    file,
    await renderModelPerformanceMetrics({ model: name, auc: latest?.auc ?? null, calibrationError: latest?.calibrationError ?? null }),
  );
}
