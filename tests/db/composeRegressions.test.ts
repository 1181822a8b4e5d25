import { afterAll, beforeAll, describe, it } from 'vitest';
import type { Reference } from '../model/reference.js';
import { freshSequence, FullRun, OnlyNewRun, PublishChallenger, Rollback, setUpReal, SourceChange, type Real } from '../model/commands.js';

/**
 * The sequences the model-based tests (composeModel.test.ts) found failing, shrunk, each a named test:
 * every step is checked against the reference as there (tests/model/commands.ts checkViews).
 */
type Step = { check(m: Readonly<Reference>): boolean; run(m: Reference, r: Real): Promise<void> };

/** Runs the steps as fast-check's model run does: a step whose precondition fails is skipped. */
async function replay(m: Reference, real: Real, steps: Step[]): Promise<void> {
  for (const step of steps) if (step.check(m)) await step.run(m, real);
}

describe('sequences the model-based tests found', () => {
  let real: Real;
  beforeAll(async () => {
    real = await setUpReal();
  });
  afterAll(async () => real?.t.drop());

  it('an only-new run after a rollback from a layer to its full run compares with the run before that full run, not with the layer rolled back from', async () => {
    const m = await freshSequence(real);
    await replay(m, real, [new SourceChange('insert', 6, 10), new SourceChange('insert', 5, 3), new OnlyNewRun(true, 2), new Rollback(0), new OnlyNewRun(false, 1)]);
  });

  it('a run started with --replace-promoted over a published challenger, killed with kill -9, resumes over that challenger and publishes', async () => {
    const m = await freshSequence(real);
    await replay(m, real, [new PublishChallenger(), new FullRun(true, 2, false, 'kill')]);
  });
});
