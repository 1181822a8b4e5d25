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

/** The exit code for any thrown value: ours carry one; anything else is a failure (1). */
export function toExitCode(err: unknown): number {
  return err instanceof ScorejobError ? err.exitCode : ExitCode.runFailed;
}
