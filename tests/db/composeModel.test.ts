import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setUpFixture, tearDownFixture, weighted, withFreshSequence, type Fixture } from '../model/commands.js';
import type { Real } from '../model/commands.js';
import type { Reference } from '../model/reference.js';
import type { SourceKeyType } from '../model/sourceKeys.js';

/**
 * Model-based tests: random sequences of full runs (plain, shared by 2 workers, or killed with kill -9 and
 * resumed), only-new runs, source inserts / updates / deletes / new rejects, reasons on and off, challenger
 * runs and their publication, rollbacks, retires and --keep-runs 1-3, each step against real PostgreSQL,
 * and after every step every reader view checked against the reference (tests/model/reference.ts).
 *
 * SCOREJOB_MODEL_SEQUENCES sequences (`npm test`: 3; CI's model tier, `npm run test:model`: 200) in
 * SCOREJOB_MODEL_SHARDS shards run side by side, shard i from seed SCOREJOB_MODEL_SEED + i. A failure
 * shrinks to a minimal sequence and names the shard's seed and fast-check's path: set
 * SCOREJOB_MODEL_SHARDS=1, SCOREJOB_MODEL_SEED and SCOREJOB_MODEL_PATH to replay it alone
 * (CONTRIBUTING.md, "Model-based tests"). Each one found is a named test in composeRegressions.test.ts.
 */
const sequences = Number(process.env.SCOREJOB_MODEL_SEQUENCES ?? 3);
const seed = Number(process.env.SCOREJOB_MODEL_SEED ?? 20261207);
const path = process.env.SCOREJOB_MODEL_PATH;
const minSteps = 8;
/** Sequences with a uuid-keyed and with a text-keyed source, each (SCOREJOB_MODEL_KEY_SEQUENCES; `npm test`: 1). */
const keySequences = Number(process.env.SCOREJOB_MODEL_KEY_SEQUENCES ?? Math.max(1, Math.round(sequences / 10)));

type Step = fc.AsyncCommand<Reference, Real>;
/** Time per kind of step, for the summary line: where a sequence's time goes. */
const timings = new Map<string, { n: number; ms: number }>();
const kindOf = (step: Step) => {
  const s = step.toString();
  return s.startsWith('full(') ? `full ${/(\w+)\)$/.exec(s)?.[1]}` : s.replace(/\(.*$/, '');
};
function timed(step: Step): Step {
  return {
    check: (m) => step.check(m),
    run: async (m, r) => {
      const t0 = performance.now();
      await step.run(m, r);
      const e = timings.get(kindOf(step)) ?? { n: 0, ms: 0 };
      timings.set(kindOf(step), { n: e.n + 1, ms: e.ms + performance.now() - t0 });
    },
    toString: () => step.toString(),
  };
}

for (const [keys, count] of [
  ['bigint', sequences],
  ['uuid', keySequences],
  ['text', keySequences],
] as [SourceKeyType, number][])
  describeSequences(keys, count);

/** Each key type explores sequences of its own: its seeds start 1000 apart (SCOREJOB_MODEL_SEED is bigint's). */
function seedOf(keys: SourceKeyType): number {
  return seed + { bigint: 0, uuid: 1000, text: 2000 }[keys];
}

function describeSequences(keys: SourceKeyType, sequences: number): void {
  const shards = Math.max(1, Math.min(sequences, Number(process.env.SCOREJOB_MODEL_SHARDS ?? (sequences >= 20 ? 3 : 1))));
  // The key types' sequences run side by side (each its own template): a key type's one shard does not wait for
  // the bigint shards.
  describe.concurrent(`every reader view matches the reference after any sequence of operations${keys === 'bigint' ? '' : ` (${keys} keys)`}`, () => {
    let fixture: Fixture;
    const t0 = performance.now();
    beforeAll(async () => {
      fixture = await setUpFixture(keys);
      console.log(
        `model-based tests (${keys} keys): ${sequences} sequences in ${shards} shard(s), seeds ${seedOf(keys)}..${seedOf(keys) + shards - 1}${path ? `, path ${path}` : ''}`,
      );
    }, 120_000);
    afterAll(async () => {
      await tearDownFixture(fixture);
      const steps = [...timings].sort((a, b) => b[1].ms - a[1].ms).map(([k, v]) => `${k} ${v.n}× ${Math.round(v.ms / v.n)} ms`);
      console.log(`model-based tests: ${((performance.now() - t0) / 1000).toFixed(0)} s; per step kind (count × mean): ${steps.join(', ')}`);
    });

    for (let shard = 0; shard < shards; shard++) {
      const runs = Math.floor(sequences / shards) + (shard < sequences % shards ? 1 : 0);
      const shardSeed = seedOf(keys) + shard;
      it.concurrent(
        `${runs} seeded sequences of ${minSteps}+ steps (shard ${shard + 1}/${shards}, seed ${shardSeed})`,
        async () => {
          const executed: number[] = [];
          await fc.assert(
            fc.asyncProperty(
              fc.commands(weighted, { maxCommands: 12 }).filter((c) => [...c].length >= minSteps + 1),
              async (cmds) => {
                const ran = await withFreshSequence(fixture, async (m, real) => {
                  await fc.asyncModelRun(() => ({ model: m, real }), [...cmds].map(timed));
                  return m.executed;
                });
                // Steps whose precondition failed were skipped: a sequence with fewer than 8 steps run does not count.
                executed.push(ran);
                fc.pre(ran >= minSteps);
              },
            ),
            { numRuns: runs, seed: shardSeed, path, verbose: 1 },
          );
          expect(executed.filter((n) => n >= minSteps).length, `sequences of ${minSteps}+ steps`).toBeGreaterThanOrEqual(path ? 1 : runs);
          console.log(
            `shard ${shard + 1}: ${executed.length} sequences, steps run min ${Math.min(...executed)} mean ${(executed.reduce((a, b) => a + b, 0) / executed.length).toFixed(1)}`,
          );
        },
        3_600_000,
      );
    }
  });
}
