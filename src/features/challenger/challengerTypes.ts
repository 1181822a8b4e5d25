import type { SiblingComparison } from '../../ledger/types.js';

/**
 * What the challenger adds to the types of the layers below it, which never name it: its option of `run`,
 * its parameters and comparison stored on the champion run (the stored keys `challenger`), its publication
 * kind, and its facts in `runs show`'s `analyst`. Declared here, beside the code that writes and reads them.
 */

/** The challenger of a run (params.challenger of the champion). */
export interface ChallengerParams {
  modelDir: string;
  name: string;
  version: string;
  sha256: string;
  /** Its sibling run (kind 'challenger'), holding its scores. */
  runId: string;
}

/**
 * How a run's challenger scored beside it (`score_runs.stats.challenger` of the champion run, shown by
 * `runs show`), over the customers both models scored. Its `run_id` is the challenger's sibling run
 * (publish it with `scorejob publish <champion> --challenger`).
 */
export interface ChallengerComparison extends SiblingComparison {
  /** Both models' drift from the run readers saw before (the --max-psi gate's baseline), side by side (stored keys); absent on older runs. */
  drift?: { baseline_run_id: string | null; champion_psi: number | null; challenger_psi: number | null };
}

declare module '../../config.js' {
  interface RunOptions {
    /** `--challenger DIR`: a second model scored in the same pass into a sibling run, never published by the run (challenger.ts). */
    challengerDir?: string | undefined;
  }
}

declare module '../../ledger/types.js' {
  interface RunParams {
    /** `--challenger DIR` (challenger.ts): on the champion, the challenger's model and sibling run; absent: none. */
    challenger?: ChallengerParams | null;
  }
  interface RunStats {
    /** How the challenger scored beside this run: the stored JSON's key, read back from existing runs' stats by `runs show`. */
    challenger?: ChallengerComparison;
  }
}

declare module '../../ledger/publicationTypes.js' {
  interface SiblingPublicationKinds {
    /** `publish <run> --challenger`: the run's challenger published instead of the run. */
    challenger: true;
  }
}

declare module '../../report/analystFacts.js' {
  interface AnalystFacts {
    /** `--challenger DIR`: how the challenger scored beside this run (comparison.ts); null without one. */
    challenger?: ChallengerComparison | null;
  }
}
