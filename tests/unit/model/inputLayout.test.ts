import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { compileFeatures } from '../../../src/model/features.js';
import { layoutInputs } from '../../../src/model/inputLayout.js';
import { parseManifest } from '../../../src/model/manifest.js';
import type { ModelTensorInfo } from '../../../src/model/tensorTypes.js';

const file = 'm/manifest.json';
const files = { manifest: file, model: 'm/model.json' };

function manifestWith(features: unknown[]) {
  return { name: 'x', version: '1', features, output: { name: 's' } };
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).not.toContain('\n');
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('layoutInputs: features to the model’s named inputs', () => {
  const input = (name: string, dtype: string, shape: (number | null)[]): ModelTensorInfo => ({ name, dtype, shape });
  const plan = (features: unknown[]) => compileFeatures(parseManifest(manifestWith(features), file));
  const numeric = [
    { column: 'a', transform: 'standardize', mean: 0, std: 1, input: 'numeric' },
    { column: 'b', transform: 'one_hot', categories: ['x', 'y'], input: 'numeric' },
    { column: 'seg', transform: 'index', categories: ['p', 'q'], input: 'segment_id' },
    { column: 'c', transform: 'raw', input: 'numeric' },
  ];

  it('splits the row by input, in manifest order within each; int32 where the input is int32', () => {
    const slots = layoutInputs(plan(numeric), [input('numeric', 'float32', [null, 4]), input('segment_id', 'int32', [null, 1])], files);
    expect(slots.map((s) => [s.name, s.dtype, s.width, s.rank, Array.from(s.columns), s.whole])).toEqual([
      ['numeric', 'float32', 4, 2, [0, 1, 2, 4], false],
      ['segment_id', 'int32', 1, 2, [3], false],
    ]);
  });

  it('feeds a single float32 input the whole row, without naming it', () => {
    const slots = layoutInputs(
      plan([
        { column: 'a', transform: 'raw' },
        { column: 'b', transform: 'boolean' },
      ]),
      [input('features', 'float32', [null, 2])],
      files,
    );
    expect(slots[0]!.whole).toBe(true);
  });

  it.each([
    [
      'a feature without input on a model with several',
      [{ ...numeric[0], input: undefined }, numeric[2]],
      [input('numeric', 'float32', [null, 1]), input('segment_id', 'int32', [null, 1])],
      `${file}: features[0].input is missing: the model has 2 inputs ("numeric", "segment_id"); name the one feature a feeds`,
    ],
    [
      'an input the model does not have',
      [numeric[0]],
      [input('dense', 'float32', [null, 1])],
      `${file}: features[0].input "numeric" is not an input of the model (its inputs: "dense")`,
    ],
    [
      'a standardize feature into an int32 input',
      [{ ...numeric[0], input: 'segment_id' }],
      [input('segment_id', 'int32', [null, 1])],
      `${file}: features[0] (a, standardize) feeds the int32 input "segment_id"; only index, one_hot and boolean features give whole numbers`,
    ],
    [
      'an input no feature feeds',
      [numeric[0]],
      [input('numeric', 'float32', [null, 1]), input('segment_id', 'int32', [null, 1])],
      `${file}: no feature feeds the model's input "segment_id" (set features[].input)`,
    ],
    [
      'a width that differs',
      numeric,
      [input('numeric', 'float32', [null, 5]), input('segment_id', 'int32', [null, 1])],
      'features in manifest.json give input "numeric" 4 values but model.json expects 5 (m/model.json)',
    ],
    [
      'a string input',
      [numeric[2]],
      [input('segment_id', 'string', [null, 1])],
      'm/model.json: input "segment_id" is string; scorejob feeds float32 or int32 inputs',
    ],
    [
      'a fixed batch size',
      [numeric[0]],
      [input('numeric', 'float32', [1, 1])],
      'm/model.json: input "numeric" has a fixed batch size of 1 (shape [1, 1]); re-export it with a free batch dimension (None / -1)',
    ],
  ])('refuses %s, in one line', (_, features, inputs, message) => {
    expect(refusal(() => layoutInputs(plan(features as unknown[]), inputs, files))).toBe(message);
  });
});
