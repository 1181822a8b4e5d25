import { describe, expect, it } from 'vitest';
import { joinOutcomes } from '../../../src/features/outcomes/customerJoin.js';
import { negative, positive, unknown } from '../../../src/stats/outcomeFigures.js';

type Label = boolean | null;

function outcomes(rows: [bigint, Label][]): { keys: BigInt64Array; rows: number; labels: Uint8Array; nulls: Uint8Array } {
  return {
    keys: BigInt64Array.from(rows, (r) => r[0]),
    rows: rows.length,
    labels: Uint8Array.from(rows, (r) => (r[1] === true ? 1 : 0)),
    nulls: Uint8Array.from(rows, (r) => (r[1] === null ? 1 : 0)),
  };
}

describe('joining outcome rows to the scored customers', () => {
  it('each scored customer gets bool_or of its rows; keys equal in one 32-bit half are told apart; rows of customers not scored are ignored', () => {
    const scored = BigInt64Array.from([0n, -1n, 2n ** 32n, 1n, 2n ** 62n + 7n, -(2n ** 40n), 5n, 6n]);
    const labels = joinOutcomes(
      scored,
      scored.length,
      outcomes([
        [1n, false],
        [1n, true],
        [1n, false],
        [2n ** 32n, false],
        [2n ** 32n, null],
        [-1n, null],
        [-1n, null],
        [2n ** 62n + 7n, true],
        [-(2n ** 40n), false],
        [0n, null],
        [0n, false],
        [2n ** 32n + 1n, true],
        [-(2n ** 40n) + 1n, true],
        [99n, true],
      ]),
    );
    expect(Array.from(labels)).toEqual([negative, unknown, negative, positive, positive, negative, unknown, unknown]);
  });

  it.each([
    ['sparse keys', 1000n],
    ['a serial key', 1n],
  ])('200,000 customers in an arbitrary order, every other one with two rows: %s', (_, step) => {
    const n = 200_000;
    const scored = new BigInt64Array(n);
    for (let i = 0; i < n; i++) scored[i] = BigInt((i * 7919) % n) * step - 5n;
    const rows: [bigint, Label][] = [];
    for (let i = 0; i < n; i += 2) rows.push([scored[i]!, i % 4 === 0], [scored[i]!, null]);
    rows.push([-6n, true], [BigInt(n) * step, true]);
    const labels = joinOutcomes(scored, n, outcomes(rows));
    for (let i = 0; i < n; i += 9_973) expect(labels[i], String(i)).toBe(i % 2 === 1 ? unknown : i % 4 === 0 ? positive : negative);
    expect(labels.filter((l) => l === positive).length).toBe(n / 4);
    expect(labels.filter((l) => l === unknown).length).toBe(n / 2);
  });
});
