import { applyRetention, dropRunLeftovers } from '../ledger/retention.js';
import { publishRun } from '../publish/publish.js';
import { runOnPublishCommand } from '../publish/onPublishCommand.js';
import type { ExecuteDeps, RunProgress } from './runState.js';

/**
 * The run's end once its gates passed: its features told it succeeded, then published (the pointer
 * moved, the on-publish command run, retention applied) or, for a dry run, its scores dropped.
 * Returns the runs whose history retention dropped.
 */
export async function publishOrDrop(deps: ExecuteDeps, progress: RunProgress): Promise<string[]> {
  const { ledger, runId, params, log, model } = deps;
  progress.stage = 'publish';
  const t = performance.now();
  let dropped: string[] = [];
  // Before the run publishes: a publish that fails marks them failed again (recordFailure), and resume reopens them.
  for (const f of deps.features) await f.finished?.(deps, { status: 'succeeded' });
  if (params.dryRun) {
    await ledger.storage.dropScoreTable(deps.client, runId);
    await dropRunLeftovers(deps.client, ledger, runId);
    await ledger.finishRun(deps.client, runId, 'succeeded', { stats: progress.runStats });
  } else {
    await progress.analyzing;
    const analyzed = progress.analyzing !== undefined;
    const event = await publishRun({
      client: deps.client,
      ledger,
      runId,
      stats: progress.runStats ?? {},
      log,
      fence: (c) => deps.fence(c),
      analyzed,
      settleMs: deps.publishSettleMs,
    });
    for (const f of deps.features) await f.published?.(deps);
    await runOnPublishCommand(params.onPublishCommand ?? undefined, event, log);
    dropped = await applyRetention({ client: deps.client, ledger, modelName: model.manifest.name, keep: params.keepRuns, log });
  }
  deps.timings.add('publish', performance.now() - t);
  return dropped;
}
