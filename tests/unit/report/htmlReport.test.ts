import { describe, expect, it } from 'vitest';
import { renderRunHtml } from '../../../src/report/htmlReport.js';
import { formatRunStatistics } from '../../../src/report/formatStats.js';
import type { RunDetail } from '../../../src/report/runsReport.js';
import { accumulate, emptyStats, summarize } from '../../../src/stats/scoreStats.js';

function detail(): RunDetail {
  const s = emptyStats();
  accumulate(s, Float32Array.from([0.1, 0.2, 0.2, 0.9]), 4);
  const column = '"><script>alert(1)</script>';
  return {
    run_id: '7', status: 'failed', trigger: 'cron', dry_run: false, published: false, model: 'm', model_version: '1', backend: 'cpu',
    rows_scored: 4, rows_rejected: 0, chunks_done: 1, chunks_total: 1, started_at: '2026-01-01T00:00:00.000Z', finished_at: null, duration_s: 1,
    error: 'PSI <b>0.5</b> over the limit', error_kind: 'gate', resume_command: 'scorejob resume 7', host: 'h', pid: 1, resumes: 0, failures: [], model_sha256: 'ab'.repeat(32),
    params: {}, tick_at: null, published_at: null, rejects_by_reason: [{ reason: 'null_without_fill', column, rows: 1 }], chunks: [],
    stats: summarize(s), timings_ms: null, previous_published: null,
    features: { rows: 4, features: [{ column, transform: 'standardize', nulls: 1, null_fraction: 0.25, min: 0, max: 1, below_min: 0, above_max: 1, outside_range_fraction: 0.25, unknown_category: 0, unknown_category_fraction: 0 }] },
    drift: { psi: null, baseline_run_id: null, bins: 10, epsilon: 1e-4 },
    forced_publish: null,
  };
}

describe('run reports', () => {
  it('the HTML page escapes every name and message that comes from the data or the database', () => {
    const page = renderRunHtml(detail());
    expect(page).not.toContain('<script');
    expect(page).not.toContain('<b>');
    expect(page).toContain('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page.match(/<rect class="bar current"/g)).toHaveLength(20);
    expect(page).not.toMatch(/class="bar previous"/); // no previous published run
  });

  it('the terminal report says when there is nothing to compare with, and how to publish a gated run', () => {
    const text = formatRunStatistics(detail()).join('\n');
    expect(text).toContain('Drift (PSI over 10 bins)  — (no previous published run)');
    expect(text).toContain('Score histogram (this run):');
    expect(text).toContain('After review, `scorejob publish 7 --force` publishes these scores as they are.');
    expect(text).toMatch(/standardize {2}25\.00% {2}25\.00% {2}/);
  });
});
