import { afterAll, beforeAll, describe, it } from 'vitest';
import type { Reference } from '../model/reference.js';
import { FullRun, OnlyNewRun, PublishChallenger, Rollback, setUpFixture, SourceChange, withFreshSequence, type Fixture, type Real } from '../model/commands.js';

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
  afterAll(async () => f?.template.drop());

  it('an only-new run after a rollback from a layer to its full run compares with the run before that full run, not with the layer rolled back from', async () => {
    await replay(f, [new SourceChange('insert', 6, 10), new SourceChange('insert', 5, 3), new OnlyNewRun(true, 2), new Rollback(0), new OnlyNewRun(false, 1)]);
  });

  it('a run started with --replace-promoted over a published challenger, killed with kill -9, resumes over that challenger and publishes', async () => {
    await replay(f, [new PublishChallenger(), new FullRun(true, 2, false, 'kill')]);
  });
});
