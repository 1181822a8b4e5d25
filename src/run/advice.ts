import type pg from 'pg';
import type { Config } from '../config.js';
import { describeDbError, isStatementTimeout } from '../db/describeError.js';
import { quoteIdent } from '../db/sql.js';
import { SqlState, isTransient, sqlStateOf } from '../db/sqlstate.js';
import { ChunkCountError, GateError, InputCheckError, ModelError, OutageError, ScorejobError, SnapshotLostError, StoppedError } from '../errors.js';
import type { ErrorKind, PlannedChunk } from '../ledger/ledger.js';
import type { LoadedModel } from '../model/load.js';
import { duplicateKeyError } from '../ledger/runAttach.js';
import { explainSourceFailure } from '../features/sourceCheck.js';

/** What a failed run's classification needs to know. */
export interface FailureContext {
  client: pg.ClientBase;
  model: LoadedModel;
  config: Config;
  runId: string;
  /** Where the run was: `planning`, `chunk N`, `statistics`, `publish`. */
  stage: string;
  /** The chunk whose failure failed the run (the chunk loop says), when a chunk did. */
  failedChunk?: PlannedChunk | undefined;
}

/** The ledger's words for a failure, and what to do about it when that is not the default ("resume"). */
export interface Failure {
  status: 'failed' | 'interrupted';
  kind: ErrorKind;
  message: string;
  /** Advice that works for this failure; undefined: {@link failureAdvice}'s default for its kind. */
  advice?: string | undefined;
}

/**
 * The ledger's words for a failure: the root cause in one line, and its kind. A database or internal
 * failure also names the stage it happened in (`… (during chunk 12)`, `… (during publish)`): its message
 * alone (a lost connection) does not say.
 */
export async function classifyFailure(err: unknown, ctx: FailureContext): Promise<Failure> {
  const { runId, stage } = ctx;
  const during = ` (during ${stage})`;
  if (err instanceof StoppedError) return { status: 'interrupted', kind: 'interrupted', message: err.message };
  if (err instanceof GateError) return { status: 'failed', kind: 'gate', message: err.message };
  if (err instanceof InputCheckError) return { status: 'failed', kind: 'input_check', message: err.message, advice: inputCheckAdvice(runId, err.checks) };
  if (err instanceof ModelError) return { status: 'failed', kind: 'model', message: err.message, advice: modelAdvice };
  if (err instanceof OutageError) {
    const message = `${describeDbError(err.cause, ctx.config.db)}, and ${err.message}${during}`;
    return {
      status: 'failed',
      kind: 'database',
      message,
      advice: `once the database is back, resume it with \`scorejob resume ${runId}\` (a longer --outage-budget rides out a longer outage)`,
    };
  }
  if (err instanceof ChunkCountError) {
    // A rewrite that also broke a column the model reads (ALTER … TYPE text): the column is the thing to fix.
    const explained = await explainSourceFailure(ctx.client, ctx.model).catch(() => undefined);
    return { status: 'failed', kind: 'data', message: explained ?? err.message };
  }
  if (err instanceof SnapshotLostError) return { status: 'failed', kind: 'database', message: err.message };
  if (err instanceof ScorejobError) return { status: 'failed', kind: 'data', message: err.message };
  const duplicate = duplicateKeyError(err, runId);
  if (duplicate) return { status: 'failed', kind: 'data', message: duplicate.message };
  const state = sqlStateOf(err);
  if (isStatementTimeout(err)) return { status: 'failed', kind: 'database', message: describeDbError(err) + during, advice: timeoutAdvice(ctx) };
  if (isTransient(err)) return { status: 'failed', kind: 'database', message: describeDbError(err, ctx.config.db) + during };
  if (state === SqlState.insufficientPrivilege) return { status: 'failed', kind: 'database', message: `permission denied: ${describeDbError(err)}${during}` };
  if (state !== undefined && (state.startsWith('22') || state.startsWith('42'))) {
    // The source changed under the run (a column dropped or retyped): say which, in the model's terms.
    const explained = await explainSourceFailure(ctx.client, ctx.model).catch(() => undefined);
    if (explained) return { status: 'failed', kind: 'data', message: explained };
    const message = describeDbError(err) + during;
    // A value of the source the server cannot read (a view's cast of bad text): the chunk's rows are the thing to fix.
    const chunk = ctx.failedChunk;
    if (state.startsWith('22') && chunk) return { status: 'failed', kind: 'data', message, advice: rowsAdvice(ctx, chunk, describeDbError(err)) };
    return { status: 'failed', kind: 'data', message };
  }
  if (state !== undefined) return { status: 'failed', kind: 'database', message: describeDbError(err, ctx.config.db) + during };
  return { status: 'failed', kind: 'internal', message: (err instanceof Error ? err.message : String(err)) + during };
}

/** What to do about a failed run, as it can be done: never to publish a run that scored no customer, never to resume what fails the same way again. */
export function failureAdvice(failure: Failure, runId: string, scored: number | undefined, dryRun: boolean): string {
  if (failure.advice !== undefined) return failure.advice;
  if (failure.kind !== 'gate') return `resume it with \`scorejob resume ${runId}\``;
  if (scored === 0) return 'no customer was scored, so there is nothing to publish: fix the model or the data, then start a new run (`scorejob run`)';
  return gateAdvice(runId, dryRun);
}

/** A failed input check passes once the source is fixed (a resume checks again), or a person accepts the input for a new run. */
function inputCheckAdvice(runId: string, checks: readonly string[]): string {
  const skips = checks.map((c) => `--skip-check ${c}`).join(' ');
  return `fix the source (or let its load finish), then \`scorejob resume ${runId}\` (the checks run again); or, to score this input as it is, start a new run with \`scorejob run ${skips} --reason "…"\``;
}

/** A model error recurs on every attempt and every resume of the run (same model, same rows): a new run, once fixed. */
const modelAdvice =
  'fix the model or the data it is fed (`scorejob model inspect` checks the model against its manifest and the source), then start a new run with `scorejob run`; resuming this run would fail the same way';

/**
 * statement_timeout: a chunk's statements scale with --chunk-size, the run's others (statistics, publish)
 * with the run: a smaller --chunk-size helps only the former.
 */
function timeoutAdvice(ctx: FailureContext): string {
  const raise = `raise statement_timeout for the job's role (ALTER ROLE ${quoteIdent(ctx.config.db.user)} SET statement_timeout = '…'), then \`scorejob resume ${ctx.runId}\``;
  if (ctx.stage.startsWith('chunk ')) return `${raise}; or start a new run with a smaller --chunk-size`;
  return `${raise} (the ${ctx.stage} statements grow with the run, not with --chunk-size)`;
}

function rowsAdvice(ctx: FailureContext, chunk: PlannedChunk, error: string): string {
  const range = `(${chunk.lo ?? '-infinity'}, ${chunk.hi ?? 'infinity'}]`;
  return `fix the source rows in ${ctx.model.manifest.source.key} ${range} (${error}), then \`scorejob resume ${ctx.runId}\``;
}

/**
 * What to do after a gate stopped a run. Not "resume": every chunk is done, so a resume would compute
 * the same figures and stop at the same gate.
 */
function gateAdvice(runId: string, dryRun: boolean): string {
  if (dryRun) return 'fix the data, then start a new run with `scorejob run`';
  return `fix the data, then start a new run with \`scorejob run\`; or, after review, publish these scores with \`scorejob publish ${runId} --force --reason "<what you checked>"\``;
}
