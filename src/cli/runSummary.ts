import { ExitCode } from '../errors.js';
import type { RunResult } from '../run/runJob.js';
import { logRunSummary } from '../run/summary.js';
import type { Context } from './action.js';

/** The run's closing summary line; the run succeeded, so exit 0. */
export function runSummary(ctx: Context, r: RunResult): number {
  logRunSummary(ctx.log, ctx.config.schema, r);
  return ExitCode.ok;
}
