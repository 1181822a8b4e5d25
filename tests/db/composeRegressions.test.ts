import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reference } from '../model/reference.js';
import {
  FullRun,
  OnlyNewRun,
  PublishChallenger,
  Rollback,
  setUpFixture,
  sharedRun,
  SourceChange,
  tearDownFixture,
  withFreshSequence,
  type Fixture,
  type Real,
} from '../model/commands.js';

/**
 * The sequences the model-based tests (composeModel.test.ts) found failing, shrunk, each a named test:
 * every step is checked against the reference as there (tests/model/commands.ts checkViews).
 */
type Step = { check(m: Readonly<Reference>): boolean; run(m: Reference, r: Real): Promise<void> };

/** Runs the steps on a fresh system as fast-check's model run does: a step whose precondition fails is skipped. */
function replay(f: Fixture, steps: Step[]): Promise<void> {
  return withFreshSequence(f, async (m: Reference, real: Real) => {
    for (const step of steps) if (step.check(m)) await step.run(m, real);
  });
}

describe('sequences the model-based tests found', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await setUpFixture();
  }, 120_000);
  afterAll(async () => tearDownFixture(f));

  it('an only-new run after a rollback from a layer to its full run compares with the run before that full run, not with the layer rolled back from', async () => {
    await replay(f, [new SourceChange('insert', 6, 10), new SourceChange('insert', 5, 3), new OnlyNewRun(true, 2), new Rollback(0), new OnlyNewRun(false, 1)]);
  });

  it('a shared run whose second worker joins by run id: the worker joins while the run is running, never after it published (nothing to do)', async () => {
    await replay(f, [new FullRun(false, 1, false, 'plain'), new FullRun(false, 2, true, 'plain'), new FullRun(false, 3, false, 'workers')]);
    await withFreshSequence(f, async (_m, real) => {
      const res = await sharedRun(real, { keepRuns: 3 });
      // It joined (a run already published would have been "nothing to do", thrown): then it found no chunk left, or the run ended.
      expect(['done', 'run-ended'], 'the second worker').toContain(res.joined.outcome);
    });
  });

  it('a run started with --replace-promoted over a published challenger, killed with kill -9, resumes over that challenger and publishes', async () => {
    await replay(f, [new PublishChallenger(), new FullRun(true, 2, false, 'kill')]);
  });
});
