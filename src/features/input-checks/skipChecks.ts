import { join } from 'node:path';
import { UsageError } from '../../errors.js';
import { builtInChecks, type InputChecks } from '../../model/manifestInputs.js';

/** A check a person skipped for one run, and why (recorded in the run's params and on each of its checks). */
export interface SkippedCheck {
  name: string;
  reason: string;
}

/** The names of the checks a manifest declares, in the order they run. */
export function declaredChecks(checks: InputChecks | undefined): string[] {
  if (checks === undefined) return [];
  return [...(checks.rowCount ? ['row_count'] : []), ...(checks.nullRate ? ['null_rate'] : []), ...checks.assertions.map((a) => a.name)];
}

/**
 * `--skip-check NAME… --reason TEXT`, checked before anything is written: each name must be a check the
 * manifest declares, and the reason is required (it is what a reviewer reads on the run).
 */
export function resolveSkips(checks: InputChecks | undefined, names: readonly string[], reason: string | undefined, manifestFile: string): SkippedCheck[] {
  if (names.length === 0) {
    if (reason !== undefined) throw new UsageError('--reason: only applies with --skip-check NAME (the check it explains)');
    return [];
  }
  if (reason === undefined || reason.trim() === '') throw new UsageError(`--skip-check ${names[0]}: say why with --reason TEXT (it is recorded on the run)`);
  const declared = declaredChecks(checks);
  for (const name of names) {
    if (!declared.includes(name)) {
      const known = declared.length === 0 ? `it declares no checks` : `its checks: ${declared.join(', ')}`;
      const hint = (builtInChecks as readonly string[]).includes(name) ? ` (add "checks": {"${name}": {}} to turn it on)` : '';
      throw new UsageError(`--skip-check ${name}: ${manifestFile} declares no check ${name}${hint}; ${known}`);
    }
  }
  return [...new Set(names)].map((name) => ({ name, reason: reason.trim() }));
}

/** The run's params entry for `opts.skipChecks` (checked): `{}` when nothing is skipped, so other runs' params stay as they were. */
export function skipChecksParam(
  checks: InputChecks | undefined,
  opts: { modelDir: string; skipChecks?: { names: readonly string[]; reason: string | undefined } | undefined },
): { skipChecks?: SkippedCheck[] } {
  const skips = resolveSkips(checks, opts.skipChecks?.names ?? [], opts.skipChecks?.reason, join(opts.modelDir, 'manifest.json'));
  return skips.length === 0 ? {} : { skipChecks: skips };
}
