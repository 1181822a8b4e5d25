/**
 * The input checks' verdicts from their figures: pure, so each limit and each message is unit-tested.
 * The figures come from the run's snapshot and the last published full run (measure.ts).
 */

/** One check's outcome as recorded on the run (`run_input_checks`) and said in the run's error. */
export interface CheckResult {
  name: string;
  outcome: 'passed' | 'failed' | 'skipped';
  /** One line with the figures, e.g. `3,500,000 rows vs 5,000,000 in run 41 (−30.0%), limit 20%`. */
  detail: string;
  figures: Record<string, unknown>;
  /** `--reason` of a skipped check. */
  reason?: string | undefined;
}

/** What the last published full run read: the baseline of the row-count and NULL-rate checks. */
export interface Baseline {
  runId: string;
  rows: number;
  /** NULL share per feature column (score_runs.stats.features), when that run recorded it. */
  nullFractions: ReadonlyMap<string, number>;
}

const count = (n: number): string => n.toLocaleString('en-US');
/** A signed percentage with a real minus sign, one decimal: `+12.5%`, `−30.0%`. */
const signed = (x: number, unit: string): string => `${x < 0 ? '−' : '+'}${Math.abs(x).toFixed(1)}${unit}`;
const limitText = (x: number): string => `${Number((x * 100).toFixed(2))}%`;

/** `row_count`: the snapshot's rows against the baseline's, within ±maxChange (a fraction). */
export function checkRowCount(rows: number, baseline: Baseline | undefined, maxChange: number): CheckResult {
  if (baseline === undefined)
    return { name: 'row_count', outcome: 'passed', detail: `${count(rows)} rows; no published full run to compare with`, figures: { rows } };
  const change = baseline.rows === 0 ? (rows === 0 ? 0 : Infinity) : (rows - baseline.rows) / baseline.rows;
  const figures = { rows, baseline_rows: baseline.rows, baseline_run_id: baseline.runId, change, limit: maxChange };
  const detail = `${count(rows)} rows vs ${count(baseline.rows)} in run ${baseline.runId} (${Number.isFinite(change) ? signed(change * 100, '%') : 'new rows'}), limit ${limitText(maxChange)}`;
  return { name: 'row_count', outcome: Math.abs(change) > maxChange ? 'failed' : 'passed', detail, figures };
}

/** `null_rate`: each feature's NULL share against the baseline's, within ±maxChangePp percentage points. */
export function checkNullRates(rows: number, nulls: ReadonlyMap<string, number>, baseline: Baseline | undefined, maxChangePp: number): CheckResult {
  const shares = [...nulls].map(([column, n]) => ({ column, share: rows === 0 ? 0 : n / rows, before: baseline?.nullFractions.get(column) }));
  const compared = shares.filter((s): s is typeof s & { before: number } => s.before !== undefined);
  if (baseline === undefined || compared.length === 0) {
    const why = baseline === undefined ? 'no published full run to compare with' : `run ${baseline.runId} recorded no NULL rates`;
    return {
      name: 'null_rate',
      outcome: 'passed',
      detail: `${shares.length} features; ${why}`,
      figures: { null_fraction: Object.fromEntries(shares.map((s) => [s.column, s.share])) },
    };
  }
  const moved = compared.map((s) => ({ ...s, pp: (s.share - s.before) * 100 })).sort((a, b) => Math.abs(b.pp) - Math.abs(a.pp));
  const over = moved.filter((s) => Math.abs(s.pp) > maxChangePp);
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const say = (s: (typeof moved)[number]) => `${s.column} ${pct(s.share)} NULL vs ${pct(s.before)} in run ${baseline.runId} (${signed(s.pp, ' pp')})`;
  const figures = {
    baseline_run_id: baseline.runId,
    limit_pp: maxChangePp,
    features: moved.map((s) => ({ column: s.column, null_fraction: s.share, baseline_null_fraction: s.before, change_pp: s.pp })),
  };
  if (over.length === 0) {
    const top = moved[0]!;
    return { name: 'null_rate', outcome: 'passed', detail: `largest change: ${say(top)}, limit ${maxChangePp} pp`, figures };
  }
  return { name: 'null_rate', outcome: 'failed', detail: `${over.map(say).join(', ')}, limit ${maxChangePp} pp`, figures };
}

/** An assertion: its query returned `offending` rows, of which `keys` are the first (at most 10). */
export function checkAssertion(name: string, offending: number, keys: readonly string[]): CheckResult {
  if (offending === 0) return { name, outcome: 'passed', detail: 'no offending rows', figures: { offending: 0 } };
  const more = offending > keys.length ? `, …` : '';
  return {
    name,
    outcome: 'failed',
    detail: `${count(offending)} offending row${offending === 1 ? '' : 's'}, keys ${keys.join(', ')}${more}`,
    figures: { offending, keys },
  };
}

/** A check a person skipped (`--skip-check NAME --reason TEXT`): recorded with the reason, not measured. */
export function skipped(name: string, reason: string): CheckResult {
  return { name, outcome: 'skipped', detail: `skipped: ${reason}`, figures: {}, reason };
}

/** The run's error line from its failed checks. */
export function describeFailures(failed: readonly CheckResult[]): string {
  return `input check${failed.length === 1 ? '' : 's'} failed: ${failed.map((f) => `${f.name}: ${f.detail}`).join('; ')}`;
}
