import { describeDbError } from '../db/describeError.js';
import { isTransient } from '../db/sqlstate.js';
import { InterruptedError, LockLostError, RunFailedError } from '../errors.js';
import { defaultOutageBudgetMs } from '../chunks/retryPolicy.js';
import { runFeatureMetrics } from '../features/reports.js';
import type { RunObserver } from '../observe/observer.js';
import { classifyFailure, failureAdvice } from './advice.js';
import type { ExecuteDeps, RunProgress } from './runState.js';

/**
 * A failed run: its failure recorded in words on the run and told to its features (a sibling run a
 * feature made takes the run's outcome), then logged here, with the run's fields, in the words returned to throw
 * (advice included); the CLI does not log it again.
 */
export async function recordFailure(deps: ExecuteDeps, progress: RunProgress, observer: RunObserver, err: unknown): Promise<Error> {
  const { ledger, runId, params, log, model } = deps;
  const failure = await classifyFailure(err, {
    client: deps.client,
    model,
    config: deps.config,
    runId,
    stage: progress.stage,
    failedChunk: progress.failedChunk,
  });
  await recordOutcome(deps, async () => {
    await ledger.finishRun(deps.client, runId, failure.status, { error: failure.message, errorKind: failure.kind, stats: progress.runStats });
    for (const f of deps.features) await f.finished?.(deps, { status: failure.status, error: failure.message, errorKind: failure.kind });
  });
  await observer.finished(
    {
      model: model.manifest.name,
      runId,
      status: failure.status,
      errorKind: failure.kind,
      published: false,
      dryRun: params.dryRun,
      psi: progress.runStats?.drift?.psi ?? null,
    },
    () => ledger.lastSuccessAt(deps.client, model.manifest.name),
    () => runFeatureMetrics(deps.client, ledger.schema, { runId, model: model.manifest.name }),
  );
  if (failure.status === 'interrupted' && deps.stop.requested) {
    const interrupted = new InterruptedError(
      `run ${runId} interrupted by ${deps.stop.requested}; resume it with \`scorejob resume ${runId}\``,
      deps.stop.requested,
    );
    log.warn({ status: 'interrupted' }, interrupted.message);
    interrupted.loggedAt = 'warn';
    return interrupted;
  }
  const failed = new RunFailedError(`run ${runId} failed: ${failure.message}; ${failureAdvice(failure, runId, progress.scoredTotal, params.dryRun)}`, runId, {
    cause: err,
  });
  log.error({ status: failure.status, error_kind: failure.kind, error: failure.message, stage: progress.stage, exit_code: failed.exitCode }, failed.message);
  failed.loggedAt = 'error';
  return failed;
}

/**
 * Records a failed run's outcome, waiting out a database outage (up to the outage budget, trying every second
 * or two), so that a run that failed because the server went away is still recorded `failed`, with its
 * reason, rather than left `running`. Never writes once the run lock was taken over (another process
 * owns the ledger of this run now).
 */
async function recordOutcome(deps: ExecuteDeps, write: () => Promise<void>): Promise<void> {
  const budgetMs = deps.outageBudgetMs ?? defaultOutageBudgetMs;
  const deadline = Date.now() + budgetMs;
  for (let attempt = 1; ; attempt++) {
    try {
      await deps.recover();
      await write();
      return;
    } catch (e) {
      if (e instanceof LockLostError) {
        deps.log.error({ err: e.message }, 'the outcome is not recorded: the run lock was taken over, and the process that took it marked this run');
        return;
      }
      if (!isTransient(e) || Date.now() >= deadline) {
        deps.log.error(
          { err: describeDbError(e) },
          'could not record the outcome in the ledger; the next run (or `scorejob runs`) will mark this run interrupted',
        );
        return;
      }
      if (attempt === 1)
        deps.log.warn(
          { err: describeDbError(e) },
          `cannot reach the ledger to record the outcome (${describeDbError(e)}); retrying for up to ${budgetMs / 1000} s (--outage-budget)`,
        );
      await new Promise((r) => setTimeout(r, Math.min(2000, 250 * 2 ** attempt)));
    }
  }
}
