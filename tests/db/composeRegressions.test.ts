import { afterAll, beforeAll, describe, it } from 'vitest';
import { freshSequence, OnlyNewRun, Rollback, setUpReal, SourceChange, type Real } from '../model/commands.js';

/**
 * The sequences the model-based tests (composeModel.test.ts) found failing, shrunk, each a named test:
 * every step is checked against the reference as there (tests/model/commands.ts checkViews).
 */
describe('sequences the model-based tests found', () => {
  let real: Real;
  beforeAll(async () => {
    real = await setUpReal();
  });
  afterAll(async () => real?.t.drop());

  it('an only-new run after a rollback from a layer to its full run compares with the run before that full run, not with the layer rolled back from', async () => {
    const m = await freshSequence(real);
    for (const step of [new SourceChange('insert', 6, 10), new SourceChange('insert', 5, 3), new OnlyNewRun(true, 2), new Rollback(0), new OnlyNewRun(false, 1)]) {
      if (step.check(m)) await step.run(m, real);
    }
  });
});
