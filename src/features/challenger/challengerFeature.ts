import type { BackendChoice } from '../../config.js';
import { NotResumableError, UsageError } from '../../errors.js';
import type { LoadedModel } from '../../model/load.js';
import { attachRunTable } from '../../ledger/runAttach.js';
import { ScoreHistogram } from '../../stats/scoreCuts.js';
import type { RunFeature, RunFeatureDefinition } from '../feature.js';
import { checkSource } from '../sourceCheck.js';
import type { RunStats } from '../../ledger/ledger.js';
import {
  challengerStatistics,
  createChallengerRun,
  finishChallenger,
  joinChallenger,
  loadChallenger,
  reloadChallenger,
  withChallengerColumns,
  type Challenger,
} from './challenger.js';

/**
 * `--challenger DIR` (docs/analysts.md): a second model scores the same chunks, in the same pass and
 * transactions, into a sibling run that only `publish --challenger` ever publishes. The sibling's status
 * follows its champion's.
 */
export const challenger: RunFeatureDefinition = {
  name: 'challenger',
  async forStart(opts, model) {
    if (opts.challengerDir === undefined) return undefined;
    // The challenger rides on every chunk loop of the run (a shared run's workers too), but not on an only-new run's carried scores.
    if (opts.onlyNew) {
      throw new UsageError(
        '--challenger cannot be combined with --only-new: a challenger is compared over every customer, an only-new run scores a few; run the challenger with a full `scorejob run --challenger DIR`',
      );
    }
    return challengerFeature(await loadChallenger(opts.challengerDir, model, opts.backend, opts.dryRun), undefined);
  },
  async forResume(params, model, runId) {
    const recorded = params.challenger ?? undefined;
    if (!recorded) return undefined;
    const backend = params.backendChoice as BackendChoice;
    return challengerFeature(await reloadChallenger(recorded, model, backend, { runId, dryRun: params.dryRun }), recorded.runId);
  },
  async forWorker(join) {
    const { run, ledger, lookup, modelDirs } = join;
    const recorded = run.params.challenger ?? undefined;
    if (!recorded) {
      if (modelDirs.challenger !== undefined) throw new UsageError(`run ${run.run_id} has no challenger: leave out --challenger`);
      return undefined;
    }
    const sibling = await ledger.getRun(lookup, recorded.runId);
    if (!sibling) throw new UsageError(`the challenger run ${recorded.runId} of run ${run.run_id} is gone from the ledger`);
    // No histogram on a worker: the coordinator's cut points come from the challenger's table.
    return challengerFeature(await joinChallenger(modelDirs.challenger ?? recorded.modelDir, sibling, join), recorded.runId);
  },
  partOf({ runId, params }, command) {
    const champion = params.championRunId;
    if (!champion) return undefined;
    const how = {
      resume: `resume that run instead (\`scorejob resume ${champion}\`)`,
      work: `join that run instead (\`scorejob work --run ${champion}\`)`,
      publish: `publish it with \`scorejob publish ${champion} --challenger\``,
    }[command];
    return `run ${runId} is the challenger of run ${champion}; ${how}`;
  },
};

/** The feature for one run: the challenger's model, its sibling run once created, and its statistics once computed. */
function challengerFeature(model: LoadedModel, recordedRunId: string | undefined): RunFeature {
  const state: { runId: string | undefined; histogram: ScoreHistogram | undefined; stats: RunStats | undefined } = {
    runId: recordedRunId,
    histogram: undefined,
    stats: undefined,
  };
  const sibling = (): Challenger => ({ model, runId: state.runId as string, histogram: state.histogram });
  const feature: RunFeature = {
    name: 'challenger',
    describe: () => ({
      fields: { challenger_run_id: state.runId },
      words: ` with challenger ${model.manifest.name} ${model.manifest.version} (run ${state.runId})`,
    }),
    check: (client) =>
      checkSource(client, model).catch((err: unknown) => {
        throw err instanceof UsageError ? new UsageError(`--challenger ${model.dir}: ${err.message}`, { cause: err }) : err;
      }),
    // The sibling run, in the transaction that creates the champion: both rows exist, or neither.
    created: async (c, run) => {
      state.runId = (await createChallengerRun(c, run.ledger, { ...run, dryRun: run.params.dryRun }, model)).runId;
    },
    resumable: async (client, ledger, run) => {
      if (run.chunks_total !== null && !(await ledger.storage.state(client, state.runId as string)).exists) {
        throw new NotResumableError(
          `the challenger's scores of run ${run.run_id} (run ${state.runId}) are gone (its table was dropped); start a new run instead`,
        );
      }
    },
    // Its status follows its champion's: running again, in the same transaction.
    reopened: (c, run) => run.ledger.reopenRun(c, state.runId as string, run.host, run.pid),
    // The same chunks (and its own table), in the plan's transaction: each chunk commits for both.
    planned: async (c, s, chunks) => {
      await s.ledger.recordPlan(c, state.runId as string, chunks);
      await s.ledger.recordChunkRows(c, state.runId as string, chunks);
    },
    // Attached, its table is never named by a pointer until `publish --challenger`. The run's process (not
    // a joined worker) counts its scores into a histogram for its percentile cut points.
    prepareStorage: async (s) => {
      if (s.params.dryRun) return;
      await attachRunTable(s.client, s.ledger, state.runId as string, s.log);
      state.histogram = new ScoreHistogram();
    },
    // Each chunk is read once with both models' columns: the champion's first (its transform sees only those).
    chunkRead: (read, s) => withChallengerColumns(read, sibling(), s.ledger),
    // Its statistics and comparison with the champion (over the deciles just recorded), on the run before its gates;
    // beside the comparison, both models' drift from the same baseline: what `publish --challenger` gates on.
    statistics: async (s) => {
      const challenged = await challengerStatistics(s, sibling());
      s.stats.challenger = {
        ...challenged.comparison,
        drift: {
          baseline_run_id: s.statistics.drift.baseline_run_id,
          champion_psi: s.statistics.drift.psi,
          challenger_psi: challenged.stats.drift?.psi ?? null,
        },
      };
      state.stats = challenged.stats;
    },
    // Succeeded before the champion publishes: a publish that fails marks it failed again, and resume reopens it.
    finished: async (s, outcome) => {
      if (outcome.status === 'succeeded' && s.params.dryRun) await s.ledger.storage.dropScoreTable(s.client, state.runId as string);
      await finishChallenger(s, state.runId as string, { ...outcome, stats: state.stats });
    },
    dispose: () => model.dispose(),
  };
  return feature;
}
