import type { Command } from 'commander';
import { ExitCode, signalExitCode } from '../errors.js';
import { action } from './action.js';
import { backend, model, option, outageBudget, read, workWait } from './options.js';
import { featureCli } from '../features/settings.js';
import { withStopSignal } from './stopSignal.js';

/** `scorejob work`: a worker that joins a shared run (started with `--workers`) from any machine. */
export function registerWork(program: Command): void {
  const cmd = program
    .command('work')
    .description('join a shared run (one started with --workers) as a worker: claim its chunks and score them until none is left')
    .option('--run <id>', 'the run to join; default: the newest shared run that is running')
    .addOption(option(workWait))
    .addOption(option(outageBudget))
    .addOption(option(model, "model directory; default: the run's own (its files' sha256 must match the run's)"));
  // The features' own: a feature's model directory on this machine, handed on by the feature's name.
  const featureSettings = featureCli.flatMap((f) => (f.work ? [[f.name, f.work.setting] as const] : []));
  for (const [, s] of featureSettings) cmd.addOption(option(s));
  cmd.addOption(option(backend, "TensorFlow.js backend: auto, tensorflow, wasm or cpu; default: the run's"));
  cmd.action(
    action(async (ctx, cmd: Command) => {
      const opts = cmd.opts<{ run?: string }>();
      const given = (name: string) => cmd.getOptionValueSource(name) === 'cli' || cmd.getOptionValueSource(name) === 'env';
      return withStopSignal(ctx.log, async (stop) => {
        const result = await (
          await import('../workers/worker.js')
        ).joinRun(
          { ...ctx, stop, outageBudgetMs: read(cmd, outageBudget) * 1000 },
          {
            runId: opts.run,
            waitS: read(cmd, workWait),
            modelDir: read(cmd, model),
            modelDirs: Object.fromEntries(featureSettings.map(([name, s]) => [name, read(cmd, s)])),
            backend: given('backend') ? read(cmd, backend) : undefined,
          },
        );
        const words = {
          done: 'no chunk is left',
          stopped: `stopped by ${stop.requested ?? 'a signal'}`,
          'run-ended': 'the run is not running any more',
          'coordinator-gone': `its coordinator is gone: resume the run with \`scorejob resume ${result.runId}\`, then start the workers again`,
        }[result.outcome];
        const exitCode = result.outcome === 'stopped' && stop.requested ? signalExitCode(stop.requested) : ExitCode.ok;
        ctx.log.info(
          {
            outcome: result.outcome,
            exit_code: exitCode,
            worker_pid: process.pid,
            peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
            chunks: result.chunks,
            rows_scored: result.rowsScored,
            rows_rejected: result.rowsRejected,
            duration_ms: Math.round(result.durationMs),
            timings_ms: result.timings,
          },
          `worker done with run ${result.runId}: ${result.chunks} chunk(s), ${result.rowsScored} scored, ${result.rowsRejected} rejected; ${words}${exitCode === ExitCode.ok ? '' : ` (exit ${exitCode}: its chunks in flight committed, its other claims given back)`}`,
        );
        return exitCode;
      });
    }),
  );
}
