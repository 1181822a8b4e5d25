import type { Config } from '../../config.js';
import type { Logger } from '../../log.js';
import { describeReasonsLost } from '../../publish/reasonsLost.js';
import { publishChallenger, type ChallengerPublishOptions } from './challengerPublish.js';

/**
 * `scorejob publish <run-id> --challenger`: the run's challenger published (src/cli/publish.ts parses the
 * flags and delegates here), and the one line that says what customer_scores shows now. `--force`: over the
 * challenger's gates (rejects, drift, the comparison with the champion), after review; never a challenger
 * that scored nobody.
 */
export async function publishChallengerCommand(ctx: { config: Config; log: Logger }, runId: string, opts: ChallengerPublishOptions): Promise<void> {
  const r = await publishChallenger(ctx, runId, opts);
  const why = opts.reason === undefined ? '' : `; reason: ${opts.reason.trim()}`;
  const lost = r.reasonsLost === undefined ? '' : describeReasonsLost(ctx.config.schema, r.reasonsLost);
  const forced = opts.force === true;
  ctx.log[lost === '' ? 'info' : 'warn'](
    {
      run_id: r.runId,
      champion_run_id: r.championRunId,
      model: r.modelName,
      status: 'succeeded',
      challenger: true,
      forced_publish: forced,
      reason: opts.reason,
      rows_scored: r.rowsScored,
      model_version: r.modelVersion,
      dropped_runs: r.droppedRuns,
      reasons_lost_from_run: r.reasonsLost?.fromRunId,
    },
    `run ${r.championRunId}'s challenger (run ${r.runId}, model version ${r.modelVersion}) published to ${ctx.config.schema}.customer_scores (model_name = '${r.modelName}')${forced ? ' by force' : ''}: ${r.rowsScored} customers${why}${lost}`,
  );
}
