import { describe, expect, it } from 'vitest';
import { renderRunHtml } from '../../../src/report/htmlReport.js';
import { formatRunDetail } from '../../../src/report/formatRuns.js';
import type { FeatureReport } from '../../../src/report/featureReport.js';
import { featureReports } from '../../../src/features/reports.js';
import type { RunDetail } from '../../../src/report/runsReport.js';
import { accumulate, emptyStats, summarize } from '../../../src/stats/scoreStats.js';

function detail(): RunDetail {
  const s = emptyStats();
  accumulate(s, Float32Array.from([0.1, 0.2, 0.2, 0.9]), 4);
  const column = '"><script>alert(1)</script>';
  return {
    run_id: '7',
    status: 'failed',
    trigger: 'cron',
    dry_run: false,
    published: false,
    model: 'm',
    model_version: '1',
    slot: 'm',
    kind: 'full',
    backend: 'cpu',
    rows_scored: 4,
    rows_carried: 0,
    rows_published: 4,
    rows_rejected: 0,
    chunks_done: 1,
    chunks_total: 1,
    started_at: '2026-01-01T00:00:00.000Z',
    finished_at: null,
    duration_s: 1,
    error: 'PSI <b>0.5</b> over the limit',
    error_kind: 'gate',
    resume_command: 'scorejob resume 7',
    host: 'h',
    pid: 1,
    resumes: 0,
    failures: [],
    model_sha256: 'ab'.repeat(32),
    params: {},
    tick_at: null,
    published_at: null,
    rejects_by_reason: [{ reason: 'null_without_fill', column, rows: 1 }],
    chunks: [],
    stats: summarize(s),
    timings_ms: null,
    previous_published: null,
    features: {
      rows: 4,
      features: [
        {
          column,
          transform: 'standardize',
          nulls: 1,
          null_fraction: 0.25,
          min: 0,
          max: 1,
          below_min: 0,
          above_max: 1,
          outside_range_fraction: 0.25,
          unknown_category: 0,
          unknown_category_fraction: 0,
        },
      ],
    },
    drift: { psi: null, baseline_run_id: null, bins: 10, epsilon: 1e-4 },
    forced_publish: null,
  };
}

/** A feature summary of one standardized column. */
function feature(column: string, nullFraction: number, outside = 0) {
  return {
    column,
    transform: 'standardize',
    nulls: 0,
    null_fraction: nullFraction,
    min: 0,
    max: 1,
    below_min: 0,
    above_max: 0,
    outside_range_fraction: outside,
    unknown_category: 0,
    unknown_category_fraction: 0,
  };
}

describe('run reports', () => {
  it('the HTML page says the next step of a gated run: a new run once the data is fixed, or publish --force after review', () => {
    const r = { ...detail(), resume_command: 'scorejob run once the data is fixed, or scorejob publish 7 --force --reason "<what you checked>" after review' };
    const page = renderRunHtml(r);
    const next = /<div id="next" class="act">([\s\S]*?)<\/div>/.exec(page)?.[1] ?? '';
    expect(next).toContain('A publish gate stopped this run');
    expect(next).toContain(
      '<code>scorejob run</code> once the data is fixed, or <code>scorejob publish 7 --force --reason &quot;&lt;what you checked&gt;&quot;</code> after review',
    );
    expect(next).not.toMatch(/resume/);
    const failed = renderRunHtml({ ...detail(), error_kind: 'database', resume_command: 'scorejob resume 7' });
    expect(failed).toMatch(/<div id="next" class="act">.*Next: <code>scorejob resume 7<\/code>/);
  });

  it('the HTML page highlights a feature whose NULL fraction appeared, shows tiny fractions, and lists what changed', () => {
    const base = detail();
    const r: RunDetail = {
      ...base,
      features: { rows: 1_000_000, features: [feature('stable', 0.02), feature('appeared', 0.0304), feature('tiny', 0.000003)] },
      previous_published: {
        run_id: '6',
        model_version: '1',
        rows_scored: 4,
        stats: base.stats,
        features: { rows: 1_000_000, features: [feature('stable', 0.0201), feature('appeared', 0), feature('tiny', 0)] },
      },
    };
    const page = renderRunHtml(r);
    const rows = /<table id="features">([\s\S]*?)<\/table>/.exec(page)?.[1] ?? '';
    expect(rows).toMatch(/<tr class="changed"[^>]*><td>appeared<\/td>/);
    expect(rows).toMatch(/<tr class="changed"[^>]*><td>tiny<\/td>/);
    expect(rows).toMatch(/<tr><td>stable<\/td>/);
    expect(rows).toContain('0.0003%');
    expect(rows).not.toMatch(/<td>tiny<\/td><td>standardize<\/td><td class="n">0\.00%/);
    const changes = /<ul id="changes">([\s\S]*?)<\/ul>/.exec(page)?.[1] ?? '';
    expect(page).toContain('<h2>What changed against run 6</h2>');
    expect(changes).toContain('appeared: NULL 3.04% (was 0.00%)');
    expect(changes).not.toContain('stable');
  });

  it('the HTML page escapes every name and message that comes from the data or the database', () => {
    const page = renderRunHtml(detail());
    expect(page).not.toContain('<script');
    expect(page).not.toContain('<b>');
    expect(page).toContain('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page.match(/<rect class="bar current"/g)).toHaveLength(20);
    expect(page).not.toMatch(/class="bar previous"/); // no previous published run
  });

  it('the terminal report says when there is nothing to compare with, and how to publish a gated run', () => {
    const text = formatRunDetail(detail());
    expect(text).toContain('Drift (PSI over 10 bins)  — (no previous published run)');
    expect(text).toContain('Score histogram (this run):');
    expect(text).toContain('After review, `scorejob publish 7 --force --reason "<what you checked>"` publishes these scores as they are.');
    expect(text).toMatch(/standardize {2}25\.00% {2}25\.00% {2}/);
  });

  it("a feature's report adds its lines, its rows and its section, in registration order, and only when passed", () => {
    const noted: FeatureReport = {
      name: 'noted',
      showLines: (r) => ['', `Noted: run ${r.run_id}`],
      htmlFacts: () => [['noted', 'a <fact>']],
      htmlSection: (_r, html) => `<h2>Noted</h2><p>${html.escape('<b>x</b>')}</p>`,
    };
    const second: FeatureReport = { name: 'second', showLines: () => ['', 'Second'] };
    const text = formatRunDetail(detail(), [noted, second]);
    expect(text).toMatch(/\nNoted: run 7\n\nSecond\n/);
    expect(text.indexOf('Noted: run 7')).toBeLessThan(text.indexOf('After review'));
    const page = renderRunHtml(detail(), { reports: [noted, second] });
    expect(page).toContain('<tr><th>noted</th><td>a &lt;fact&gt;</td></tr>');
    expect(page).toContain('<h2>Noted</h2><p>&lt;b&gt;x&lt;/b&gt;</p>');
    expect(formatRunDetail(detail())).not.toContain('Noted');
    expect(renderRunHtml(detail())).not.toContain('Noted');
  });

  it("feature drift on the page: every feature's PSI, the top movers' shares per bin beside the baseline, names escaped", () => {
    const r: RunDetail = {
      ...detail(),
      feature_drift: {
        baseline_sha256: 'ab',
        previous_run_id: '6',
        features: [
          { feature: 'region', psi_baseline: 0.31, psi_previous: 0.12 },
          { feature: 'tenure', psi_baseline: 0.004, psi_previous: null },
        ],
        distributions: [{ feature: 'region', bins: ['<north>', 'south', 'other', 'NULL'], baseline: [0.5, 0.5, 0, 0], run: [0.2, 0.8, 0, 0], previous: null }],
      },
    };
    const page = renderRunHtml(r, { reports: featureReports });
    expect(page).toMatch(
      /<table id="feature-drift">.*<tr><td>region<\/td><td class="n"><span class="major">0\.3100<\/span><\/td><td class="n"><span class="moderate">0\.1200<\/span><\/td><\/tr>/,
    );
    const region = /<table class="feature-distribution" data-feature="region">(.*?)<\/table>/.exec(page)?.[1] ?? '';
    expect(region).toContain('<tr><th>region</th><th>this run</th><th>baseline</th></tr>');
    expect(region).toMatch(/<tr><td>&lt;north&gt;<\/td><td><svg [^>]*><rect width="30\.0"[^>]*\/><\/svg> 20\.0%<\/td><td><svg [^>]*><rect width="75\.0"/);
    expect(formatRunDetail(r, featureReports)).toMatch(
      /Feature drift \(PSI vs the model's baseline and vs run 6, top movers first\):\n {2}region +0\.3100 +0\.1200\n {2}tenure +0\.0040 +—/,
    );
  });
});
