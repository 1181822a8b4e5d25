import { describe, expect, it } from 'vitest';
import {
  churnProbability,
  copyTextBlocks,
  customerColumns,
  formatCopyLine,
  generateCustomers,
  generateLabeledCustomers,
  type CustomerRow,
} from '../../../src/dev/synthetic.js';

const take = (seed: number, count: number, nullFraction?: number): CustomerRow[] => [...generateCustomers({ count, seed, nullFraction })];

/** Rank-based AUC (Mann-Whitney), ties ignored: enough to show a signal. */
function auc(scores: number[], labels: boolean[]): number {
  const order = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let rankSum = 0;
  let positives = 0;
  order.forEach((row, rank) => {
    if (labels[row]) {
      rankSum += rank + 1;
      positives++;
    }
  });
  const negatives = order.length - positives;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

describe('synthetic customers', () => {
  it('are a pure function of the seed', () => {
    expect(take(42, 2000)).toEqual(take(42, 2000));
    const other = take(43, 2000);
    const differing = take(42, 2000).filter((row, i) => JSON.stringify(row) !== JSON.stringify(other[i]));
    expect(differing.length).toBeGreaterThan(1900);
  });

  it('have increasing keys with gaps of 1 to 7, like a real table', () => {
    const ids = take(5, 10_000).map((r) => r.customer_id);
    const steps = ids.slice(1).map((id, i) => id - ids[i]!);
    expect(Math.min(...steps)).toBe(1);
    expect(Math.max(...steps)).toBe(7);
    expect(new Set(steps).size).toBe(7);
    // Not dense: the key range is about four times the row count.
    expect(ids.at(-1)! - ids[0]!).toBeGreaterThan(3 * ids.length);
  });

  it('put NULLs only in nullable columns, at about nullFraction', () => {
    for (const fraction of [0, 0.02, 0.3]) {
      const rows = take(9, 20_000, fraction);
      for (const column of customerColumns) {
        const nulls = rows.filter((r) => r[column.name] === null).length / rows.length;
        if (!column.nullable) expect(nulls, column.name).toBe(0);
        else expect(Math.abs(nulls - fraction), `${column.name} at ${fraction}`).toBeLessThan(0.012);
      }
    }
  });

  it('have plausible, correlated values', () => {
    const rows = take(3, 20_000);
    for (const r of rows) {
      expect(r.tenure_months).toBeGreaterThanOrEqual(0);
      expect(r.discount_share).toBeGreaterThanOrEqual(0);
      expect(r.discount_share).toBeLessThanOrEqual(1);
      expect(r.returns_12m).toBeLessThanOrEqual(r.orders_12m);
      if (r.orders_12m > 0) expect(Math.abs(r.revenue_12m - r.orders_12m * r.avg_order_value)).toBeLessThanOrEqual(r.orders_12m * 0.005 + 0.01);
      else expect(r.revenue_12m).toBe(0);
      if (r.days_since_last_order === null) expect(r.orders_12m).toBe(0);
      else if (r.orders_12m > 0) expect(r.days_since_last_order).toBeLessThan(365);
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const aov = (segment: string) => mean(rows.filter((r) => r.segment === segment && r.orders_12m > 0).map((r) => r.avg_order_value));
    expect(aov('enterprise')).toBeGreaterThan(aov('smb'));
    expect(aov('smb')).toBeGreaterThan(aov('consumer'));
  });

  it('carry a churn label that the features predict', () => {
    const rows = [...generateLabeledCustomers({ count: 20_000, seed: 11 })];
    const rate = rows.filter((r) => r.churned).length / rows.length;
    expect(rate).toBeGreaterThan(0.1);
    expect(rate).toBeLessThan(0.4);
    const labels = rows.map((r) => r.churned);
    expect(auc(rows.map(churnProbability), labels)).toBeGreaterThan(0.8);
    // One column alone already carries signal: long-lapsed customers churn more.
    const churnAmong = (keep: (r: CustomerRow) => boolean) => {
      const group = rows.filter(keep);
      return group.filter((r) => r.churned).length / group.length;
    };
    expect(churnAmong((r) => (r.days_since_last_order ?? 9999) > 180)).toBeGreaterThan(2 * churnAmong((r) => (r.days_since_last_order ?? 9999) < 30));
  });

  it('are the same customers with or without the label', () => {
    const labeled = [...generateLabeledCustomers({ count: 500, seed: 8 })].map(({ churned: _, ...row }) => row);
    expect(labeled).toEqual(take(8, 500));
  });

  it('format as PostgreSQL text COPY, in blocks that hold every row once', () => {
    const rows = take(21, 3000, 0.2);
    const text = rows.map(formatCopyLine).join('');
    const blocks = [...copyTextBlocks({ count: 3000, seed: 21, nullFraction: 0.2 }, 4096)];
    expect(blocks.length).toBeGreaterThan(10);
    expect(blocks.join('')).toBe(text);
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    for (const [i, line] of lines.entries()) {
      const fields = line.split('\t');
      expect(fields).toHaveLength(customerColumns.length);
      const row = rows[i]!;
      customerColumns.forEach((column, c) => {
        const value = row[column.name];
        const field = fields[c]!;
        if (value === null) expect(field).toBe('\\N');
        else if (typeof value === 'boolean') expect(field).toBe(value ? 't' : 'f');
        else if (typeof value === 'number') expect(Number(field)).toBe(value);
        else expect(field).toBe(value);
      });
    }
  });
});
