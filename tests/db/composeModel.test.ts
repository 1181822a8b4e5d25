import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshSequence, setUpReal, weighted, type Real } from '../model/commands.js';

/**
 * Model-based tests: random sequences of full runs (plain, shared by 2 workers, or killed with kill -9 and
 * resumed), only-new runs, source inserts / updates / deletes / new rejects, reasons on and off, challenger
 * runs and their publication, rollbacks and --keep-runs 1-3, each step against real PostgreSQL, and after
 * every step every reader view checked against the reference (tests/model/reference.ts). `npm test` runs
 * a few seeded sequences; `npm run test:model` runs SCOREJOB_MODEL_SEQUENCES (default 200) of them.
 * A failure shrinks to a minimal sequence; each one found is a named test in composeRegressions.test.ts.
 */
const sequences = Number(process.env.SCOREJOB_MODEL_SEQUENCES ?? 2);
const seed = Number(process.env.SCOREJOB_MODEL_SEED ?? 20261207);

describe('every reader view matches the reference after any sequence of operations', () => {
  let real: Real;
  beforeAll(async () => {
    real = await setUpReal();
  });
  afterAll(async () => real?.t.drop());

  it(`${sequences} seeded sequences of 8+ steps (seed ${seed})`, async () => {
    const executed: number[] = [];
    const t0 = performance.now();
    await fc.assert(
      fc.asyncProperty(fc.commands(weighted, { maxCommands: 12 }).filter((c) => [...c].length >= 9), async (cmds) => {
        const m = await freshSequence(real);
        await fc.asyncModelRun(() => ({ model: m, real }), cmds);
        // Steps whose precondition failed were skipped: a sequence with fewer than 8 steps run does not count.
        executed.push(m.executed);
        fc.pre(m.executed >= 8);
      }),
      { numRuns: sequences, seed, verbose: 1 },
    );
    expect(executed.filter((n) => n >= 8).length, 'sequences of 8+ steps').toBeGreaterThanOrEqual(sequences);
    console.log(`${executed.length} sequences, steps run min ${Math.min(...executed)} mean ${(executed.reduce((a, b) => a + b, 0) / executed.length).toFixed(1)}, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }, 3_600_000);
});
