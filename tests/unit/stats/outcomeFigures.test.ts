import { describe, expect, it } from 'vitest';
import { aucRankSum, brierScore, expectedAuc, ksStatistic, logLoss } from '../../../src/stats/classification.js';
import { outcomeFigures, positive, unknown, type ScoredOutcomes, type SegmentFigures } from '../../../src/stats/outcomeFigures.js';

function lcg(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1664525 + 1013904223) >>> 0) / 2 ** 32;
}

interface Row {
  p: number;
  y: number;
  band: number;
}

function input(rows: Row[], bandNames: string[]): ScoredOutcomes {
  return {
    rows: rows.length,
    scores: Float64Array.from(rows, (r) => r.p),
    labels: Uint8Array.from(rows, (r) => r.y),
    bands: Int32Array.from(rows, (r) => r.band),
    bandNames,
  };
}

/** Score deciles of the rows with an outcome, written out plainly: ties kept together, a decile by the rows below. */
function referenceDeciles(known: Row[]): { customers: number[]; predicted: number[]; observed: number[] } {
  const sorted = [...known].sort((a, b) => a.p - b.p);
  const bins = Array.from({ length: 10 }, () => ({ n: 0, p: 0, pos: 0 }));
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j < sorted.length && sorted[j]!.p === sorted[i]!.p) j++;
    const bin = bins[Math.min(9, Math.floor((i * 10) / sorted.length))]!;
    for (let k = i; k < j; k++) {
      bin.n++;
      bin.p += sorted[k]!.p;
      bin.pos += sorted[k]!.y;
    }
    i = j;
  }
  const full = bins.filter((b) => b.n > 0);
  return { customers: full.map((b) => b.n), predicted: full.map((b) => b.p / b.n), observed: full.map((b) => b.pos / b.n) };
}

/** Every (FPR, TPR) of the curve: the rates of "score above t" for each score t, and for t below every score. */
function rocCurve(known: Row[]): Set<string> {
  const positives = known.filter((r) => r.y === positive).length;
  const negatives = known.length - positives;
  const key = (f: number, t: number) => `${f.toFixed(12)},${t.toFixed(12)}`;
  const points = new Set([key(1, 1)]);
  for (const t of new Set(known.map((r) => r.p))) {
    const above = known.filter((r) => r.p > t);
    points.add(key(above.filter((r) => r.y !== positive).length / negatives, above.filter((r) => r.y === positive).length / positives));
  }
  return points;
}

function expectSegment(got: SegmentFigures | undefined, rows: Row[]): void {
  expect(got).toBeDefined();
  const f = got!;
  const known = rows.filter((r) => r.y !== unknown);
  const s = known.map((r) => r.p);
  const y = known.map((r) => r.y);
  expect([f.customers, f.withOutcome, f.positives]).toEqual([rows.length, known.length, y.filter((v) => v === positive).length]);
  expect(f.auc).toBeCloseTo(aucRankSum(s, y), 9);
  expect(f.ks).toBeCloseTo(ksStatistic(s, y), 9);
  expect(f.brier).toBeCloseTo(brierScore(s, y), 9);
  expect(f.logLoss).toBeCloseTo(logLoss(s, y), 9);
  expect(f.estimatedAuc).toBeCloseTo(expectedAuc(rows.map((r) => r.p)), 9);
  expect(f.expectedPositiveRate).toBeCloseTo(rows.reduce((a, r) => a + r.p, 0) / rows.length, 9);
  const deciles = referenceDeciles(known);
  expect(f.deciles?.customers).toEqual(deciles.customers);
  f.deciles?.predicted.forEach((v, i) => expect(v).toBeCloseTo(deciles.predicted[i]!, 9));
  f.deciles?.observed.forEach((v, i) => expect(v).toBeCloseTo(deciles.observed[i]!, 9));
}

describe('outcome figures from one sort of the scores', () => {
  const rand = lcg(17);
  // Scores on a coarse grid (many ties), float4 like the score tables; a tenth without an outcome.
  const rows: Row[] = Array.from({ length: 4000 }, () => {
    const p = Math.fround(Math.round(rand() ** 1.5 * 300) / 300);
    const y = rand() < 0.1 ? unknown : rand() < p ? positive : 0;
    return { p, y, band: p < 0.2 ? 0 : p < 0.5 ? 1 : 2 };
  });

  it('whole run and each band equal the definitions of classification.ts over their own rows, ties and missing outcomes included', () => {
    const figures = outcomeFigures(input(rows, ['low', 'mid', 'high']));
    expect(figures.map((f) => f.band)).toEqual([null, 'high', 'low', 'mid']);
    expectSegment(figures[0], rows);
    for (const [i, name] of ['low', 'mid', 'high'].entries())
      expectSegment(
        figures.find((f) => f.band === name),
        rows.filter((r) => r.band === i),
      );
  });

  it('bands that are not score intervals still get their own figures', () => {
    const shuffled = rows.map((r, i) => ({ ...r, band: i % 3 === 0 ? -1 : i % 2 }));
    const figures = outcomeFigures(input(shuffled, ['a', 'b']));
    expect(figures.map((f) => f.band)).toEqual([null, 'a', 'b']);
    expectSegment(figures[0], shuffled);
    expectSegment(
      figures[1],
      shuffled.filter((r) => r.band === 0),
    );
    expectSegment(
      figures[2],
      shuffled.filter((r) => r.band === 1),
    );
  });

  it('about 50 ROC points for the whole run, each a point of its exact curve, in order', () => {
    const [whole, ...bands] = outcomeFigures(input(rows, ['low', 'mid', 'high']));
    const roc = whole!.roc!;
    expect(roc.fpr.length).toBe(roc.tpr.length);
    expect(roc.fpr.length).toBeGreaterThan(30);
    expect(roc.fpr.length).toBeLessThanOrEqual(51);
    const curve = rocCurve(rows.filter((r) => r.y !== unknown));
    roc.fpr.forEach((f, i) => expect(curve.has(`${f.toFixed(12)},${roc.tpr[i]!.toFixed(12)}`), `${f}, ${roc.tpr[i]}`).toBe(true));
    for (let i = 1; i < roc.fpr.length; i++) {
      expect(roc.fpr[i]).toBeGreaterThanOrEqual(roc.fpr[i - 1]!);
      expect(roc.tpr[i]).toBeGreaterThanOrEqual(roc.tpr[i - 1]!);
    }
    expect(roc.fpr[0]).toBe(0);
    expect(bands.every((b) => b.roc === null)).toBe(true);
  });

  it('-0 ties with 0; one class only: no AUC, KS or ROC, but Brier; no outcome at all: counts only; no rows: nothing', () => {
    const zeros = outcomeFigures(
      input(
        [
          { p: -0, y: positive, band: -1 },
          { p: 0, y: 0, band: -1 },
          { p: 0.5, y: 0, band: -1 },
        ],
        [],
      ),
    );
    expect(zeros[0]!.auc).toBeCloseTo(aucRankSum([0, 0, 0.5], [1, 0, 0]), 12);
    const oneClass = outcomeFigures(
      input(
        [
          { p: 0.25, y: positive, band: -1 },
          { p: 0.75, y: positive, band: -1 },
        ],
        [],
      ),
    )[0]!;
    expect([oneClass.auc, oneClass.ks, oneClass.roc]).toEqual([null, null, null]);
    expect(oneClass.brier).toBeCloseTo((0.75 ** 2 + 0.25 ** 2) / 2, 12);
    const none = outcomeFigures(input([{ p: 0.5, y: unknown, band: 0 }], ['only']));
    expect(none.map((f) => [f.band, f.customers, f.withOutcome, f.auc, f.brier, f.deciles, f.ece, f.topDecileLift])).toEqual([
      [null, 1, 0, null, null, null, null, null],
      ['only', 1, 0, null, null, null, null, null],
    ]);
    expect(none[0]!.expectedPositiveRate).toBe(0.5);
    expect(outcomeFigures(input([], []))).toEqual([]);
  });
});
