import { describe, expect, it } from 'vitest';
import { draftManifest, type ProfileSummary } from '../../../src/model/init.js';

const profile: ProfileSummary = {
  table: 'public.accounts',
  key: 'id',
  rows: 100,
  columns: [
    { kind: 'number', name: 'age', type: 'integer', nulls: 10, mean: 40.5, std: 12.25, min: 18, max: 90, nonFinite: 0, beyondFloat32: 0 },
    { kind: 'number', name: 'flat', type: 'integer', nulls: 0, mean: 3, std: 0, min: 3, max: 3, nonFinite: 0, beyondFloat32: 0 },
    { kind: 'boolean', name: 'active', type: 'boolean', nulls: 5, trues: 70, falses: 25 },
    {
      kind: 'text',
      name: 'plan',
      type: 'text',
      nulls: 0,
      categories: [
        { value: 'pro', count: 60 },
        { value: 'free', count: 40 },
      ],
      truncated: false,
    },
    {
      kind: 'text',
      name: 'country',
      type: 'text',
      nulls: 3,
      categories: [
        { value: 'de', count: 50 },
        { value: 'fr', count: 47 },
      ],
      truncated: true,
    },
  ],
  skipped: [{ name: 'created', type: 'timestamp with time zone' }],
};

describe('draftManifest', () => {
  it('drafts a standardize, boolean and one_hot manifest for one float input, with fills where NULLs are', () => {
    const { manifest, notes } = draftManifest(
      '/m/accounts-churn',
      profile,
      { format: 'layers-model', inputs: [{ name: 'x', dtype: 'float32', shape: [null, 7] }], outputNames: ['y'] },
      { numbers: 'standardize' },
    );
    expect(manifest.name).toBe('accounts-churn');
    expect(manifest.source).toEqual({ table: 'public.accounts', key: 'id' });
    expect(manifest.description).toMatch(/a person must review it/);
    expect(manifest.features).toEqual([
      { column: 'age', transform: 'standardize', mean: 40.5, std: 12.25, min: 18, max: 90, fill: 40.5 },
      { column: 'flat', transform: 'standardize', mean: 3, std: 1, min: 3, max: 3 },
      { column: 'active', transform: 'boolean', fill: true },
      { column: 'plan', transform: 'one_hot', categories: ['pro', 'free'] },
      { column: 'country', transform: 'one_hot', categories: ['de', 'fr'], fill: 'de' },
    ]);
    expect(notes).toEqual(
      expect.arrayContaining([
        'created (timestamp with time zone): not a number, boolean or text column; left out',
        'flat: constant (3); std 1 used',
        'age: 10% NULL; fill 40.5 (the mean) suggested',
        'country: more than 2 distinct values; the 2 most frequent kept (the rest count as unknown)',
      ]),
    );
    expect(notes.some((n) => n.startsWith('input'))).toBe(false); // 1+1+1+2+2 = 7 fits
  });

  it('gives int32 inputs the text column named like them as index features, the rest raw to the float input; notes a width that does not fit', () => {
    const model = {
      format: 'graph-model',
      inputs: [
        { name: 'numeric', dtype: 'float32', shape: [null, 4] },
        { name: 'country_id', dtype: 'int32', shape: [null, 1] },
      ],
      outputNames: ['churn', 'value'],
    };
    const { manifest, notes } = draftManifest('/m/x', profile, model, { numbers: 'raw' });
    expect(manifest.features.map((f) => [f.column, f.transform, f.input])).toEqual([
      ['age', 'raw', 'numeric'],
      ['flat', 'raw', 'numeric'],
      ['active', 'boolean', 'numeric'],
      ['plan', 'one_hot', 'numeric'],
      ['country', 'index', 'country_id'],
    ]);
    expect(manifest.features[4]).toMatchObject({ categories: ['de', 'fr'], fill: 2 });
    expect(manifest.output.from).toBe('churn');
    expect(notes).toContain('input numeric: the model expects 4 values, the draft gives 5: add, remove or change features');
    expect(notes).toContain('the model has 2 outputs (churn, value): output.from is the first; name the one that is the score');
  });
});
