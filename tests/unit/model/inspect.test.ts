import { describe, expect, it } from 'vitest';
import { formatModelReport, inspectModel } from '../../../src/model/inspect.js';

const fixture = 'tests/fixtures/models/tiny';

describe('inspectModel', () => {
  it('reports the manifest, input width, files with sha256 and the backend', async () => {
    const report = await inspectModel(fixture, { backend: 'cpu' });
    expect(report.inputWidth).toBe(13);
    expect(report.backend).toBe('cpu');
    expect(report.files.map((f) => f.name)).toEqual(['manifest.json', 'model.json', 'weights.bin']);
    expect(report.sha256).toMatch(/^[0-9a-f]{64}$/);
    const text = formatModelReport(report);
    expect(text).toContain('model    tiny 0.0.1  (tests/fixtures/models/tiny)');
    expect(text).toContain('input    13 floats per row, from 7 features');
    expect(text).toContain('backend  cpu');
    expect(text).toMatch(/6-10\s+region\s+one_hot\s+north, south, east, west, central; NULL -> central/);
    expect(text).toContain(`sha256 ${report.sha256}`);
    expect(text).toContain('(all = sha256sum manifest.json model.json weights.bin | sha256sum)');
  });

  it("names the manifest's segments", async () => {
    const report = await inspectModel(fixture, { backend: 'cpu' });
    expect(formatModelReport(report)).not.toContain('segments ');
    report.manifest.segments = ['region', 'channel'];
    expect(formatModelReport(report)).toContain("segments region, channel (each value's scores watched per run)\nbackend  cpu");
  });

  it('adds the source check when given one', async () => {
    const report = await inspectModel(fixture, { backend: 'cpu' });
    const text = formatModelReport(report, {
      table: 'customers',
      relation: 'public.customers',
      relkind: 'table',
      key: { name: 'customer_id', type: 'bigint', ok: true, unique: 'yes' },
      columns: [
        { name: 'tenure_months', type: 'integer', ok: true },
        { name: 'revenue_12m', type: 'text', ok: false },
      ],
      problems: ['column revenue_12m of customers is text, expected a number'],
      notes: [],
    });
    expect(text).toContain('source check (public.customers, table)');
    expect(text).toMatch(/--\s+revenue_12m\s+text/);
    expect(text).toContain('  problem: column revenue_12m of customers is text, expected a number');
  });
});
