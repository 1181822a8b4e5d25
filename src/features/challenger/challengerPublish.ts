import { UsageError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Config } from '../../config.js';
import type pg from 'pg';
import type { Ledger, RunRow } from '../../ledger/ledger.js';
import { comparisonGateBreach, defaultComparisonLimits, type ComparisonLimits } from './comparison.js';
import { ChallengerLedger } from './challengerLedger.js';
import { psiGateBreach, rejectGateBreach } from '../../stats/runStats.js';
import { checkForceReason, forceCommand } from '../../publish/forceReason.js';
import { modelOfRun, withModelLock } from '../../publish/modelLock.js';
import { applyRetention } from '../../ledger/retention.js';
import { attachRunTable } from '../../ledger/runAttach.js';
import { publishRun } from '../../publish/publish.js';
import { runOnPublishCommand } from '../../publish/onPublishCommand.js';
import { reasonsLost, type ReasonsLost } from '../../publish/reasonsLost.js';

export interface ChallengerPublishResult {
  championRunId: string;
  runId: string;
  modelName: string;
  modelVersion: string;
  rowsScored: number;
  droppedRuns: string[];
  /** Set when the run it replaced had reasons (`--reasons K`) and the challenger has none. */
  reasonsLost: ReasonsLost | undefined;
}

export interface ChallengerPublishOptions {
  onPublishCommand?: string | undefined;
  /** Past the challenger's gates, after review; needs `reason`. */
  force?: boolean | undefined;
  /** Why, recorded on the publication (published_runs.reason). */
  reason?: string | undefined;
  /** How close to the champion the challenger must be (default {@link defaultComparisonLimits}). */
  limits?: ComparisonLimits | undefined;
}

/**
 * `scorejob publish <run-id> --challenger`: makes the challenger's scores of a succeeded run what
 * customer_scores shows for the champion's model, through the same publish as a run (the pointer move,
 * NOTIFY, the publication recorded with kind `challenger`), under the model's run lock (exit 75 if held).
 * Refused (exit 2, one line) for a run without a challenger, not succeeded, dry, or superseded, for a
 * challenger that scored nobody, and, unless forced with a reason, for one that breached the run's gates
 * (--max-reject-ratio, --max-psi) or differs from the champion beyond `limits`.
 */
export async function publishChallenger(
  ctx: { config: Config; log: Logger },
  championRunId: string,
  opts: ChallengerPublishOptions,
): Promise<ChallengerPublishResult> {
  if (!/^\d{1,18}$/.test(championRunId)) throw new UsageError(`run id "${championRunId}" is not a run number (see \`scorejob runs\`)`);
  const reason = checkForceReason(championRunId, { ...opts, flag: '--challenger' });
  return withModelLock(ctx, 'publish', modelOfRun(championRunId), async ({ client, ledger, lock }) => {
    // Read again under the lock: a run may have finished or published meanwhile.
    const champion = (await ledger.getRun(client, championRunId)) as RunRow;
    const challengerId = await checkChallengerPublishable(client, ledger, champion);
    const challenger = (await ledger.getRun(client, challengerId)) as RunRow;
    if (opts.force !== true) checkChallengerGates(ledger, champion, challenger, opts.limits ?? defaultComparisonLimits);
    const log = ctx.log.child({ run_id: challengerId, champion_run_id: championRunId });
    await attachRunTable(client, ledger, challengerId, log);
    const event = await publishRun({
      client,
      ledger,
      runId: challengerId,
      stats: challenger.stats ?? {},
      log,
      fence: (c) => lock.fence(c),
      kind: 'challenger',
      reason,
      forced: opts.force === true,
    });
    await runOnPublishCommand(opts.onPublishCommand, event, log);
    const dropped = await applyRetention({ client, ledger, modelName: champion.model_name, keep: champion.params.keepRuns ?? 12, log });
    const lost = await reasonsLost(client, ledger, event.previous_run_id, challenger);
    return {
      championRunId,
      runId: challengerId,
      modelName: champion.model_name,
      modelVersion: challenger.model_version,
      rowsScored: Number(challenger.rows_scored),
      droppedRuns: dropped,
      reasonsLost: lost,
    };
  });
}

/** Every reason the run's challenger cannot be published at all, each a usage error (exit 2) saying what to do; else the challenger's run id. */
async function checkChallengerPublishable(client: pg.ClientBase, ledger: Ledger, run: RunRow): Promise<string> {
  const id = run.run_id;
  if (run.params.championRunId)
    throw new UsageError(`run ${id} is itself a challenger; publish it with \`scorejob publish ${run.params.championRunId} --challenger\``);
  const challenger = await new ChallengerLedger(ledger).challengerOf(client, id);
  if (!challenger)
    throw new UsageError(`run ${id} has no challenger (it was not started with --challenger DIR); start one with \`scorejob run --challenger DIR\``);
  if (run.dry_run)
    throw new UsageError(`run ${id} was a dry run: its challenger's scores were dropped with it; start a real run with \`scorejob run --challenger DIR\``);
  if (run.status !== 'succeeded' || challenger.status !== 'succeeded') {
    throw new UsageError(
      `run ${id} is ${run.status}${run.status === 'succeeded' ? ` but its challenger (run ${challenger.run_id}) is ${challenger.status}` : ''}; only a succeeded run's challenger can be published${run.status === 'failed' || run.status === 'interrupted' ? `: continue it with \`scorejob resume ${id}\`` : ''}`,
    );
  }
  const counts = (await ledger.getRun(client, challenger.run_id)) as RunRow;
  if (Number(counts.rows_scored) === 0) {
    throw new UsageError(
      `the challenger of run ${id} (run ${challenger.run_id}) scored no customer (${counts.rows_rejected} rejected: see ${ledger.schema}.score_rejects for run ${challenger.run_id}); publishing it would empty customer_scores`,
    );
  }
  if ((await ledger.publications.currentRun(client, run.model_name)) === challenger.run_id) {
    throw new UsageError(`the challenger of run ${id} (run ${challenger.run_id}) is already published; there is nothing to do`);
  }
  const newer = await ledger.laterPublishedRun(client, challenger.run_id, run.model_name);
  if (newer !== undefined)
    throw new UsageError(`run ${newer} was published after run ${id}'s challenger (run ${challenger.run_id}) was scored; publishing it would go back in time`);
  if (!(await ledger.storage.state(client, challenger.run_id)).exists)
    throw new UsageError(
      `the challenger's scores of run ${id} (run ${challenger.run_id}) are gone (retention dropped them); start a new run with \`scorejob run --challenger DIR\``,
    );
  return challenger.run_id;
}

/**
 * The gates a challenger meets before it replaces its champion without `--force`: the run's own
 * (--max-reject-ratio, --max-psi: they held for the champion only), unless the run was itself published by
 * force, and the comparison with the champion on the same customers, always.
 */
function checkChallengerGates(ledger: Ledger, run: RunRow, challenger: RunRow, limits: ComparisonLimits): void {
  const id = run.run_id;
  const orForce = `, or after review publish it anyway with ${forceCommand(id, '--challenger')}`;
  const runGates = run.stats?.forced_publish === undefined;
  const rejects = runGates ? rejectGateBreach(Number(challenger.rows_scored), Number(challenger.rows_rejected), run.params.maxRejectRatio) : undefined;
  if (rejects) {
    throw new UsageError(
      `the challenger of run ${id} (run ${challenger.run_id}) ${rejects}; ` +
        `see ${ledger.schema}.score_rejects for run ${challenger.run_id}, fix the challenger or the data, then start a new run with \`scorejob run --challenger DIR\`${orForce}`,
    );
  }
  const drift = challenger.stats?.drift;
  const breach = runGates && drift ? psiGateBreach(drift, run.params.maxPsi) : undefined;
  if (breach) throw new UsageError(`the challenger of run ${id} (run ${challenger.run_id}): ${breach}; compare both in \`scorejob runs show ${id}\`${orForce}`);
  const apart = comparisonGateBreach(run.stats?.challenger, limits);
  if (apart) throw new UsageError(`the challenger of run ${id} (run ${challenger.run_id}) ${apart}; compare both in \`scorejob runs show ${id}\`${orForce}`);
}
