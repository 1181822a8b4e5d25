import type { Command } from 'commander';
import { parseNumberFlag } from '../config.js';
import { UsageError } from '../errors.js';
import { defaultComparisonLimits, type ComparisonLimits } from '../stats/challenger.js';
import { action } from './action.js';
import { metricsFile, metricsPush, onPublishCommand, option, read, sourceOf, type DefaultedSetting } from './options.js';
import { readObserveOptions } from './runOptions.js';

/** A limit of the comparison gate of `publish --challenger` (src/stats/challenger.ts), flag only. */
function limit(flags: string, description: string, value: number, range: [number, number]): DefaultedSetting<number> {
  return { flags, description, default: String(value), parse: (v, name) => parseNumberFlag(v, name, range[0], range[1]) };
}

const minCorrelation = limit('--min-correlation <r>', "with --challenger: refuse (without --force) a challenger whose scores' correlation with the champion's is under this", defaultComparisonLimits.minCorrelation, [-1, 1]);
const minTopDecileOverlap = limit('--min-top-decile-overlap <f>', "with --challenger: refuse (without --force) a challenger that keeps less than this share of the champion's top decile in its own", defaultComparisonLimits.minTopDecileOverlap, [0, 1]);
const maxPsiVsChampion = limit('--max-psi-vs-champion <x>', "with --challenger: refuse (without --force) a challenger whose scores' PSI over the champion's deciles exceeds this", defaultComparisonLimits.maxPsi, [0, 1000]);
const limitSettings = [minCorrelation, minTopDecileOverlap, maxPsiVsChampion];

/** The comparison limits, checked; one given without --challenger is refused (it would be ignored). */
function readLimits(cmd: Command, challenger: boolean): ComparisonLimits {
  for (const s of limitSettings) if (!challenger && sourceOf(cmd, s) === 'cli') throw new UsageError(`${s.flags.split(' ')[0]} applies to publish --challenger only`);
  return { minCorrelation: read(cmd, minCorrelation), minTopDecileOverlap: read(cmd, minTopDecileOverlap), maxPsi: read(cmd, maxPsiVsChampion) };
}

/** `scorejob publish <run-id> --force --reason TEXT`: a gated run, published after a person has looked at it; `--challenger`: the run's challenger. */
export function registerPublish(program: Command): void {
  const cmd = program
    .command('publish')
    .description('publish a run that a publish gate (--max-reject-ratio, --max-psi) stopped, after a person has looked at it; or, with --challenger, the challenger a run scored beside it')
    .argument('<run-id>', 'the run (see `scorejob runs show <run-id>`)')
    .option('--force', 'publish it although it breached a gate (needs --reason)', false)
    .option('--reason <text>', 'why, recorded on the publication (published_runs.reason); required with --force')
    .option('--challenger', "publish the scores of the run's challenger (`run --challenger DIR`) instead of the run's", false);
  for (const s of limitSettings) cmd.addOption(option(s));
  cmd
    .addOption(option(metricsFile, 'write Prometheus metrics (textfile collector) when done'))
    .addOption(option(metricsPush, 'push the same metrics to this Prometheus Pushgateway when done (replacing the group job="scorejob", model=NAME)'))
    .addOption(option(onPublishCommand))
    .action(
      action(async (ctx, runId: string, cmd: Command) => {
        const { metricsFile, metricsPush } = readObserveOptions(cmd);
        const flags = cmd.opts<{ force: boolean; challenger: boolean; reason?: string }>();
        const limits = readLimits(cmd, flags.challenger);
        const { describeReasonsLost } = await import('../publish/reasonsLost.js');
        const why = flags.reason === undefined ? '' : `; reason: ${flags.reason.trim()}`;
        if (flags.challenger) {
          // --force: over the challenger's gates (rejects, drift, the comparison with the champion), after review; never a challenger that scored nobody.
          const r = await (await import('../features/challenger/challengerPublish.js')).publishChallenger(ctx, runId, { onPublishCommand: read(cmd, onPublishCommand), force: flags.force, reason: flags.reason, limits });
          const lost = r.reasonsLost === undefined ? '' : describeReasonsLost(ctx.config.schema, r.reasonsLost);
          ctx.log[lost === '' ? 'info' : 'warn'](
            { run_id: r.runId, champion_run_id: r.championRunId, model: r.modelName, status: 'succeeded', challenger: true, forced_publish: flags.force, reason: flags.reason, rows_scored: r.rowsScored, model_version: r.modelVersion, dropped_runs: r.droppedRuns, reasons_lost_from_run: r.reasonsLost?.fromRunId },
            `run ${r.championRunId}'s challenger (run ${r.runId}, model version ${r.modelVersion}) published to ${ctx.config.schema}.customer_scores (model_name = '${r.modelName}')${flags.force ? ' by force' : ''}: ${r.rowsScored} customers${why}${lost}`,
          );
          return;
        }
        const r = await (await import('../publish/forcePublish.js')).forcePublish({ ...ctx, metricsFile, metricsPush }, runId, { force: flags.force, reason: flags.reason, onPublishCommand: read(cmd, onPublishCommand) });
        const lost = r.reasonsLost === undefined ? '' : describeReasonsLost(ctx.config.schema, r.reasonsLost);
        ctx.log[lost === '' ? 'info' : 'warn'](
          { run_id: r.runId, model: r.modelName, status: 'succeeded', forced_publish: true, reason: r.reason, rows_scored: r.rowsScored, rows_rejected: r.rowsRejected, psi: r.psi, model_version: r.modelVersion, dropped_runs: r.droppedRuns, reasons_lost_from_run: r.reasonsLost?.fromRunId },
          `run ${r.runId} published to ${ctx.config.schema}.customer_scores (model_name = '${r.modelName}') by force: ${r.rowsScored} customers, model ${r.modelName} ${r.modelVersion}${why}${lost}`,
        );
      }),
    );
}
