/**
 * The few error classes scorejob uses. Each carries the exit code the README ("Exit codes") documents, so the CLI
 * is the only place that turns an error into a process exit.
 */

/** Exit codes relied on by cron wrappers (README "Exit codes"). */
export const ExitCode = {
  ok: 0,
  runFailed: 1,
  usage: 2,
  locked: 75,
  lockStuck: 69,
  sigint: 130,
  sigterm: 143,
} as const;

/**
 * The exit code of a run stopped by SIGINT or SIGTERM: 128 + the signal's number, what a shell reports
 * for a process the signal killed (130, 143). The one mapping: the CLI, the scheduler and errors use it.
 */
export function signalExitCode(signal: NodeJS.Signals): number {
  return signal === 'SIGINT' ? ExitCode.sigint : ExitCode.sigterm;
}

export class ScorejobError extends Error {
  readonly exitCode: number;
  /** Set by the code that already logged this error with its context (a run, with its run_id): the CLI does not log it again. */
  loggedAt: 'warn' | 'error' | undefined;
  constructor(message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad flag, bad configuration, bad model, un-migrated database: found before anything is written. */
export class UsageError extends ScorejobError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.usage, options);
  }
}

/**
 * A run cannot be resumed as it is (its model files changed, its scores were dropped, a later run
 * superseded it): exit 2 for `scorejob resume`; a due tick starts a new run instead.
 */
export class NotResumableError extends UsageError {}

/** A run (or a command) failed after it started; for a run the ledger says why and it can be resumed. */
export class RunFailedError extends ScorejobError {
  readonly runId: string | undefined;
  constructor(message: string, runId?: string, options?: { cause?: unknown }) {
    super(message, ExitCode.runFailed, options);
    this.runId = runId;
  }
}

/** Another run holds the run lock; nothing was done (cron: try later). */
export class LockedError extends ScorejobError {
  constructor(message: string) {
    super(message, ExitCode.locked);
  }
}

/** `source.ready_when` returned false or NULL: nothing was done, a later tick tries again (75, no cron mail). */
export class SourceNotReadyError extends ScorejobError {
  constructor(message: string) {
    super(message, ExitCode.locked);
  }
}

/** `source.ready_when` still false past `--ready-deadline` after the tick: a failure (1) a person hears of; nothing was written. */
export class StaleSourceError extends ScorejobError {
  constructor(message: string) {
    super(message, ExitCode.runFailed);
  }
}

/** A manifest input check failed before the first chunk: the run fails (1, kind input_check), no score table written. */
export class InputCheckError extends ScorejobError {
  /** The checks that failed, by name (what `--skip-check` takes). */
  readonly checks: readonly string[];
  constructor(message: string, checks: readonly string[]) {
    super(message, ExitCode.runFailed);
    this.checks = checks;
  }
}

/**
 * The run lock has been held far longer than a normal run (its holder still renews it): nothing was
 * done, and unlike 75 this is not "try later" but "look at the holder" (EX_UNAVAILABLE, 69).
 */
export class LockStuckError extends ScorejobError {
  constructor(message: string) {
    super(message, ExitCode.lockStuck);
  }
}

/** The run stopped cleanly on a signal and is resumable. */
export class InterruptedError extends ScorejobError {
  readonly signal: NodeJS.Signals;
  constructor(message: string, signal: NodeJS.Signals) {
    super(message, signalExitCode(signal));
    this.signal = signal;
  }
}

/** Nothing to do (e.g. `--if-due` found the tick done once the lock was held): exit 0, nothing written. */
export class NothingToDoError extends ScorejobError {
  constructor(message: string) {
    super(message, ExitCode.ok);
  }
}

/** The lock was taken over while this process believed it held it: stop, write nothing more. */
export class LockLostError extends RunFailedError {}

/**
 * A chunk read `read` rows where its snapshot held `planned`. In one snapshot the two are equal unless the
 * table was rewritten (its new file's rows are invisible to any older snapshot) or the source does not give
 * the same rows twice. Not retried: the same snapshot reads the same.
 */
export class ChunkCountError extends RunFailedError {
  constructor(chunkNo: number, source: { table: string }, read: number, planned: number, runId: string) {
    const what = `chunk ${chunkNo} read ${read} rows of ${source.table} where the run's snapshot held ${planned}`;
    super(
      read < planned
        ? `${what}: the source was rewritten during the run (ALTER TABLE … TYPE, VACUUM FULL, CLUSTER or TRUNCATE), ` +
            `which leaves a snapshot older than the rewrite an empty table; a resume reads the source afresh`
        : `${what}: the source does not return the same rows twice in one snapshot (a view over volatile functions or a foreign table?); make it stable, then resume`,
      runId,
    );
  }
}

/**
 * The source has no rows: nothing to score, the published scores are unchanged. Found before a run
 * started it is a usage error (2, nothing written); found when a started run plans (the rows went away
 * since), the run fails (1) and the ledger records it.
 */
export class EmptySourceError extends ScorejobError {
  readonly runId: string | undefined;
  constructor(table: string, runId?: string) {
    super(`source ${table} has no rows: nothing to score (the published scores are unchanged)`, runId === undefined ? ExitCode.usage : ExitCode.runFailed);
    this.runId = runId;
  }
}

/** A gate (reject ratio, PSI, nothing scored) stopped a run before publish: the run fails (1), its scores kept unpublished. */
export class GateError extends ScorejobError {
  constructor(message: string) {
    super(message, ExitCode.runFailed);
  }
}

/**
 * A run noticed a stop request between chunks. The run records it as interrupted and rethrows it as an
 * {@link InterruptedError} (the signal's exit code); on its own it is a failure (1).
 */
export class StoppedError extends ScorejobError {
  constructor(message: string) {
    super(message, ExitCode.runFailed);
  }
}

/** The snapshot a read was to import is gone: the transaction that exported it ended (its connection was lost). */
export class SnapshotLostError extends ScorejobError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.runFailed, options);
  }
}

/**
 * A worker of a shared run found, at its chunk's commit, that its claim on the chunk was taken over (its
 * lease expired while it stalled): the chunk's transaction is rolled back and the worker claims another.
 */
export class ClaimLostError extends ScorejobError {
  constructor(readonly chunkNo: number) {
    super(`lost the claim on chunk ${chunkNo}: another worker took it over after this one's lease expired`, ExitCode.runFailed);
  }
}

/**
 * The model backend failed on a chunk's input (a TF.js error: an index out of an Embedding's range, a shape
 * the model does not take). Deterministic: the same chunk fails the same way on every attempt and resume.
 */
export class ModelError extends ScorejobError {
  constructor(
    readonly chunkNo: number,
    cause: unknown,
  ) {
    const why = (cause instanceof Error ? cause.message : String(cause)).split('\n')[0] ?? '';
    super(`the model failed on chunk ${chunkNo}'s input: ${why}`, ExitCode.runFailed, { cause });
  }
}

/** The database stayed unreachable for longer than the outage budget (`--outage-budget`); `cause` is the last connection error. */
export class OutageError extends ScorejobError {
  constructor(
    readonly budgetS: number,
    cause: unknown,
  ) {
    super(`the database stayed unreachable for longer than the outage budget (${budgetS} s, --outage-budget)`, ExitCode.runFailed, { cause });
  }
}

/** A migration's SQL failed; its transaction was rolled back, the schema is at the previous version. */
export class MigrationError extends ScorejobError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.runFailed, options);
  }
}

/** The exit code for any thrown value: ours carry one; anything else is a failure (1). */
export function toExitCode(err: unknown): number {
  return err instanceof ScorejobError ? err.exitCode : ExitCode.runFailed;
}
