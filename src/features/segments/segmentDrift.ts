import type { SegmentDriftSummary, SegmentMover } from '../../ledger/types.js';
import { formatCount } from '../../format.js';
import { populationStabilityIndex, psiBins } from '../../stats/psi.js';
import { binsAt, rejectsAt, rowsAt, sumAt, type SegmentLayout } from './segmentCounter.js';

/** A segment of an earlier run, as the next run compares with it. */
export interface PreviousSegment {
  rows_scored: number;
  share: number;
  score_bins: number[];
}

/** The key a segment is compared by across runs: its column, kind and value. */
export const segmentKey = (s: { segment: string; value_kind: string; value: string | null }): string =>
  `${s.segment}\u0000${s.value_kind}\u0000${s.value ?? ''}`;

/** One segment of a run, as stored (run_segments). */
export interface SegmentRow extends SegmentMover {
  value_no: number;
  rows_rejected: number;
  band_shares: Record<string, number> | null;
  score_bins: number[];
  /** The previous run's rows scored in this segment (not stored: the gate's minimum). */
  previous_rows: number | null;
}

/**
 * The gate judges a segment only with at least this many rows scored in both runs: below it, the PSI of
 * ten bins is mostly sampling noise (about 9 × (1/n₁ + 1/n₂) for unchanged scores: 0.018 at 1,000 rows each).
 */
export const gateMinRows = 1000;

/** Each segment with a row read, from the run's merged counts, compared with the previous run's same segment. */
export function segmentRows(
  layout: SegmentLayout,
  merged: Float64Array,
  bandNames: readonly string[],
  previous: ReadonlyMap<string, PreviousSegment>,
): SegmentRow[] {
  const out: SegmentRow[] = [];
  layout.columns.forEach((col, k) => {
    const first = layout.firstSlot[k]!;
    const slots = col.values.length + 2;
    let read = 0;
    for (let v = 0; v < slots; v++) read += merged[(first + v) * layout.stride + rowsAt]! + merged[(first + v) * layout.stride + rejectsAt]!;
    for (let v = 0; v < slots; v++) {
      const at = (first + v) * layout.stride;
      const rows = merged[at + rowsAt]!;
      const rejected = merged[at + rejectsAt]!;
      if (rows + rejected === 0) continue;
      const kind = v < col.values.length ? 'value' : v === col.values.length ? 'null' : 'other';
      const value = kind === 'value' ? col.values[v]! : null;
      const bins = Array.from(merged.subarray(at + binsAt, at + binsAt + psiBins));
      const prev = previous.get(segmentKey({ segment: col.column, value_kind: kind, value }));
      out.push({
        segment: col.column,
        value_no: v,
        value,
        value_kind: kind,
        rows_scored: rows,
        rows_rejected: rejected,
        share: (rows + rejected) / read,
        previous_share: prev?.share ?? null,
        mean_score: rows > 0 ? merged[at + sumAt]! / rows : null,
        band_shares: bandShares(merged, at + binsAt + psiBins, bandNames, rows),
        score_bins: bins,
        previous_rows: prev?.rows_scored ?? null,
        psi_previous: prev && prev.rows_scored > 0 && rows > 0 ? populationStabilityIndex(prev.score_bins, bins) : null,
      });
    }
  });
  return out;
}

function bandShares(merged: Float64Array, at: number, names: readonly string[], rows: number): Record<string, number> | null {
  if (names.length === 0 || rows === 0) return null;
  return Object.fromEntries(names.map((n, b) => [n, merged[at + b]! / rows]));
}

/** The segments that moved most first (no PSI last), then the larger first. */
export function rankSegments<T extends SegmentMover>(rows: readonly T[]): T[] {
  return [...rows].sort((a, b) => (b.psi_previous ?? -1) - (a.psi_previous ?? -1) || b.rows_scored - a.rows_scored);
}

/** What the run stores in its stats: how many segments, and the top movers. */
export function segmentSummary(rows: readonly SegmentRow[], previousRunId: string | null, top = 5): SegmentDriftSummary {
  const compared = rows.some((r) => r.psi_previous !== null);
  return {
    previous_run_id: compared ? previousRunId : null,
    segments: rows.length,
    top: rankSegments(rows)
      .slice(0, top)
      .map((r) => ({
        segment: r.segment,
        value: r.value,
        value_kind: r.value_kind,
        rows_scored: r.rows_scored,
        share: r.share,
        previous_share: r.previous_share,
        mean_score: r.mean_score,
        psi_previous: r.psi_previous,
      })),
  };
}

/** How a segment is named in messages and reports: `region=north`, `region=(null)`, `region=(other)`. */
export function segmentLabel(s: Pick<SegmentMover, 'segment' | 'value' | 'value_kind'>): string {
  return `${s.segment}=${s.value_kind === 'value' ? s.value : `(${s.value_kind})`}`;
}

/**
 * The `--max-segment-psi` gate: the segments (with at least {@link gateMinRows} rows scored in both runs)
 * whose PSI against the previous published run exceeds the limit, the largest first, in one line;
 * undefined when none does.
 */
export function segmentPsiGateBreach(rows: readonly SegmentRow[], previousRunId: string | null, max: number | null | undefined): string | undefined {
  if (max === null || max === undefined) return undefined;
  const over = rankSegments(rows).filter(
    (r) => r.psi_previous !== null && r.psi_previous > max && r.rows_scored >= gateMinRows && (r.previous_rows ?? 0) >= gateMinRows,
  );
  if (over.length === 0) return undefined;
  const named = over.map((r) => `${segmentLabel(r)} (PSI ${r.psi_previous!.toFixed(4)} vs run ${previousRunId}, ${formatCount(r.rows_scored)} rows)`);
  return `${over.length} segment(s) drifted over the limit of ${max} (--max-segment-psi): ${named.join(', ')}`;
}
