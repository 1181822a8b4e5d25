import { UsageError } from '../errors.js';

/** The command that publishes a run past a gate, as advice (the reason in the person's words); `flag`: a feature's own flag of `publish`. */
export function forceCommand(runId: string, flag?: string): string {
  return `\`scorejob publish ${runId}${flag ? ` ${flag}` : ''} --force --reason "<what you checked>"\``;
}

/**
 * `--force` takes a person's word over a gate: it needs `--reason TEXT`, recorded on the publication
 * (exit 2 before anything is read without one). Returns the reason, trimmed (undefined when none was given).
 */
export function checkForceReason(
  runId: string,
  opts: { force?: boolean | undefined; reason?: string | undefined; flag?: string | undefined },
): string | undefined {
  const reason = opts.reason?.trim();
  if (opts.reason !== undefined && reason === '')
    throw new UsageError('--reason is empty: say in a few words why (it is recorded on the publication, published_runs.reason)');
  if (opts.force && reason === undefined) {
    throw new UsageError(
      `--force needs --reason TEXT: say why the gate may be passed (recorded in published_runs.reason and shown by scorejob runs), e.g. ${forceCommand(runId, opts.flag)}`,
    );
  }
  return reason;
}
