import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseManifest } from '../../src/model/manifest.js';
import { blocksOf, docPages } from '../helpers/docBlocks.js';

/**
 * The JSON and YAML a reader copies (a manifest, an alert rule, a payload to parse) parse as shown; the
 * manifest of docs/models.md passes scorejob's own manifest check. A fragment says so right above it.
 */
const blocks = docPages()
  .flatMap((f) => blocksOf(f))
  .filter((b) => b.notRun === undefined);
const json = blocks.filter((b) => b.lang === 'json');
const yaml = blocks.filter((b) => b.lang === 'yaml');

describe('the JSON and YAML blocks of the docs', () => {
  it('are found', () => {
    expect(json.length).toBeGreaterThanOrEqual(3);
    expect(yaml.length).toBeGreaterThanOrEqual(1);
  });

  for (const b of json) it(`${b.file}:${b.line} is JSON`, () => expect(() => JSON.parse(b.code), b.code).not.toThrow());
  for (const b of yaml) it(`${b.file}:${b.line} is YAML`, () => expect(() => parseYaml(b.code), b.code).not.toThrow());

  it('the sample manifest of docs/models.md is a valid manifest', () => {
    const sample = json.find((b) => b.file === 'docs/models.md' && b.code.includes('"features"'));
    expect(sample).toBeDefined();
    expect(parseManifest(JSON.parse(sample!.code), 'docs/models.md').source).toEqual({ table: 'customers', key: 'customer_id' });
  });
});
