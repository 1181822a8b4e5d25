import type { FeatureReport } from '../../report/featureReport.js';
import type { RunDetail } from '../../report/runsReport.js';
import { formatCount } from '../../format.js';

/** Segments in `runs show` (docs/models.md "Segments"): the top movers; every segment is in the segment_drift view. */
export const segmentsReport: FeatureReport = {
  name: 'segments',
  showLines: (r) => formatSegments(r.segments),
};

/** The segments that moved most against the previous published run (every one: the segment_drift view). */
export function formatSegments(d: RunDetail['segments']): string[] {
  if (!d || d.segments === 0) return [];
  const label = (m: (typeof d.top)[number]) => `${m.segment}=${m.value_kind === 'value' ? m.value : `(${m.value_kind})`}`;
  const width = Math.max(7, ...d.top.map((m) => label(m).length));
  const against = d.previous_run_id ? `PSI vs run ${d.previous_run_id}` : 'no earlier published run to compare with';
  const lines = ['', `Segments (${d.segments}; ${against}; top movers first, all in scoring.segment_drift):`];
  for (const m of d.top) {
    const psi = m.psi_previous === null ? '—' : m.psi_previous.toFixed(4);
    const share = `${(m.share * 100).toFixed(1)}%${m.previous_share !== null ? ` (was ${(m.previous_share * 100).toFixed(1)}%)` : ''}`;
    lines.push(
      `  ${label(m).padEnd(width)} ${psi.padStart(8)}  ${formatCount(m.rows_scored).padStart(10)} rows  ${share}  mean ${m.mean_score?.toFixed(4) ?? '—'}`,
    );
  }
  return lines;
}
