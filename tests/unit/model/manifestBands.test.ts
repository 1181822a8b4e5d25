import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { parseManifest } from '../../../src/model/manifest.js';

const file = 'models/x/manifest.json';

function withBands(bands: unknown): Record<string, unknown> {
  return {
    name: 'm',
    version: '1',
    features: [{ column: 'a', transform: 'boolean' }],
    output: { name: 'p', bands },
  };
}

function messageOf(bands: unknown): string {
  try {
    parseManifest(withBands(bands), file);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected the manifest to be refused');
}

describe('manifest output.bands', () => {
  it('reads named bands, lowest first, each but the last with its exclusive upper bound', () => {
    const bands = [{ name: 'low', below: 0.3 }, { name: 'medium', below: 0.7 }, { name: 'high' }];
    expect(parseManifest(withBands(bands), file).output.bands).toEqual(bands);
    expect(parseManifest(withBands(undefined), file).output.bands).toBeUndefined();
  });

  it('refuses bands a reader could not rely on, naming the field', () => {
    expect(messageOf([{ name: 'all' }])).toMatch(/^models\/x\/manifest\.json: output\.bands must be an array of at least two bands/);
    expect(messageOf([{ name: 'low', below: 0.7 }, { name: 'mid', below: 0.3 }, { name: 'high' }])).toBe(
      "models/x/manifest.json: output.bands[1].below (0.3) must be greater than the band before's (0.7)",
    );
    expect(messageOf([{ name: 'low' }, { name: 'high' }])).toMatch(/output\.bands\[0\]\.below must be a number/);
    expect(
      messageOf([
        { name: 'low', below: 0.5 },
        { name: 'high', below: 1 },
      ]),
    ).toMatch(/output\.bands\[1\]\.below must be left out on the last band/);
    expect(messageOf([{ name: 'x', below: 0.5 }, { name: 'x' }])).toMatch(/output\.bands\[1\]\.name "x" is used twice/);
    expect(messageOf([{ name: 'low', below: 0.5, colour: 'red' }, { name: 'high' }])).toMatch(/output\.bands\[0\]\.colour is not a known field/);
  });
});
