import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { parseManifest, splitTableName } from '../../../src/model/manifest.js';

const file = 'models/x/manifest.json';

function valid(): Record<string, any> {
  return {
    name: 'customer-value',
    version: '1.0.0',
    description: 'churn',
    source: { table: 'customers', key: 'customer_id' },
    features: [
      { column: 'tenure_months', transform: 'standardize', mean: 31.2, std: 22.9, min: 0, max: 120, fill: 0 },
      { column: 'segment', transform: 'one_hot', categories: ['consumer', 'smb', 'enterprise'], fill: 'consumer' },
      { column: 'is_subscriber', transform: 'boolean', fill: false },
    ],
    output: { name: 'churn_probability', description: 'p', unit: 0 },
    training: { auc: 0.9 },
  };
}

function messageOf(edit: (m: Record<string, any>) => unknown): string {
  const m = valid();
  edit(m);
  try {
    parseManifest(m, file);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('parseManifest accepted the manifest');
}

describe('parseManifest', () => {
  it('reads "draft": true as a draft, false or absent as reviewed, and refuses anything else naming the field', () => {
    expect(parseManifest({ ...valid(), draft: true }, file).draft).toBe(true);
    expect(parseManifest({ ...valid(), draft: false }, file).draft).toBeUndefined();
    expect(parseManifest(valid(), file).draft).toBeUndefined();
    expect(messageOf((m) => (m.draft = 'yes'))).toBe(`${file}: draft must be true (a draft nobody has reviewed yet) or left out (got "yes")`);
  });

  it('accepts the documented format', () => {
    const m = parseManifest(valid(), file);
    expect(m.features).toHaveLength(3);
    expect(m.output.unit).toBe(0);
    expect(m.training).toEqual({ auc: 0.9 });
  });

  it('reads segments as a list of distinct column names, and refuses anything else in one line naming the field', () => {
    expect(parseManifest({ ...valid(), segments: ['region', 'channel'] }, file).segments).toEqual(['region', 'channel']);
    expect(parseManifest(valid(), file).segments).toBeUndefined();
    expect(messageOf((m) => (m.segments = 'region'))).toBe(`${file}: segments must be a non-empty array of source column names, e.g. ["region"]`);
    expect(messageOf((m) => (m.segments = []))).toBe(`${file}: segments must be a non-empty array of source column names, e.g. ["region"]`);
    expect(messageOf((m) => (m.segments = ['region', 3]))).toBe(`${file}: segments[1] must be a string (got 3)`);
    expect(messageOf((m) => (m.segments = ['region', 'region']))).toBe(`${file}: segments[1] "region" is listed twice`);
    expect(messageOf((m) => (m.segments = ['']))).toBe(`${file}: segments[0] must not be empty`);
  });

  it('defaults source to customers/customer_id, and leaves output.unit and fill unset when absent', () => {
    const json = valid();
    delete json.source;
    delete json.output.unit;
    delete json.features[0].fill;
    delete json.description;
    const m = parseManifest(json, file);
    expect(m.source).toEqual({ table: 'customers', key: 'customer_id' });
    expect(m.output.unit).toBeUndefined();
    expect(m.features[0]!.fill).toBeUndefined();
    expect(m.description).toBe('');
  });

  it('accepts schema.table and splits it', () => {
    const json = valid();
    json.source = { table: 'crm.accounts', key: 'id' };
    expect(parseManifest(json, file).source).toEqual({ table: 'crm.accounts', key: 'id' });
    expect(splitTableName('crm.accounts')).toEqual({ schema: 'crm', name: 'accounts' });
    expect(splitTableName('customers')).toEqual({ schema: undefined, name: 'customers' });
  });

  it.each<[string, (m: Record<string, any>) => unknown, string]>([
    ['not an object', (m) => Object.assign(m, { features: 'x' }), 'features must be a non-empty array'],
    ['no name', (m) => delete m.name, 'name must be a string (got nothing)'],
    ['empty version', (m) => (m.version = ' '), 'version must not be empty'],
    ['unknown top-level field', (m) => (m.extra = 1), 'extra is not a known field'],
    ['empty features', (m) => (m.features = []), 'features must be a non-empty array'],
    [
      'bad transform',
      (m) => (m.features[1].transform = 'onehot'),
      'features[1].transform must be one of standardize, one_hot, boolean, raw, index (got "onehot")',
    ],
    ['std zero', (m) => (m.features[0].std = 0), 'features[0].std must be a positive number (got 0)'],
    ['std negative', (m) => (m.features[0].std = -1), 'features[0].std must be a positive number'],
    ['std missing', (m) => delete m.features[0].std, 'features[0].std must be a positive number (got nothing)'],
    ['mean not a number', (m) => (m.features[0].mean = '3'), 'features[0].mean must be a number (got "3")'],
    ['min above max', (m) => (m.features[0].min = 200), 'features[0].min (200) must not exceed max (120)'],
    ['fill of wrong type', (m) => (m.features[0].fill = null), 'features[0].fill must be a number (got null)'],
    [
      'fill overflowing float32',
      (m) => (m.features[0].fill = 1e300),
      'features[0].fill (1e+300) gives the model a non-finite input: (fill - mean) / std overflows float32',
    ],
    ['misspelt fill', (m) => (m.features[2].fil = true), 'features[2].fil is not a known field (expected column, transform, input, fill)'],
    ['boolean fill not boolean', (m) => (m.features[2].fill = 'no'), 'features[2].fill must be true or false'],
    ['empty categories', (m) => (m.features[1].categories = []), 'features[1].categories must be a non-empty array of strings'],
    ['duplicate category', (m) => m.features[1].categories.push('smb'), 'features[1].categories[3] "smb" is listed twice'],
    ['non-string category', (m) => (m.features[1].categories[1] = 2), 'features[1].categories[1] must be a string (got 2)'],
    ['fill not a category', (m) => (m.features[1].fill = 'other'), 'features[1].fill "other" must be one of categories'],
    ['duplicate column', (m) => (m.features[2].column = 'tenure_months'), 'features[2].column "tenure_months" is already used by features[0]'],
    ['empty column', (m) => (m.features[0].column = ''), 'features[0].column must not be empty'],
    ['column too long', (m) => (m.features[0].column = 'c'.repeat(64)), 'features[0].column "cccc'],
    ['three-part table', (m) => (m.source.table = 'a.b.c'), 'source.table must be "table" or "schema.table" (got "a.b.c")'],
    ['empty key', (m) => (m.source.key = ''), 'source.key must not be empty'],
    ['output unit negative', (m) => (m.output.unit = -1), 'output.unit must be a whole number >= 0 (got -1)'],
    ['output unit fraction', (m) => (m.output.unit = 0.5), 'output.unit must be a whole number >= 0'],
    ['output missing', (m) => delete m.output, 'output must be a JSON object (got nothing)'],
    ['training not an object', (m) => (m.training = [1]), 'training must be a JSON object (got an array)'],
  ])('%s: names the file and the field', (_, edit, expected) => {
    const message = messageOf(edit);
    expect(message.startsWith(`${file}: `)).toBe(true);
    expect(message).toContain(expected);
    expect(message).not.toContain('\n');
  });

  it('rejects a top level that is not an object', () => {
    expect(() => parseManifest([1], file)).toThrow(`${file}: must hold a JSON object (got an array)`);
  });
});
