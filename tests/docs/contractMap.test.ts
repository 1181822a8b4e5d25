import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';

/**
 * docs/contract.md maps every promise of the README and docs/ to the tests that prove it: in each table
 * row's last cell, a test file in backquotes, each followed by parts of test names in double quotes.
 * Every file must exist and every name must be part of the name of a test (or describe block) in it.
 */
interface Cited {
  row: number;
  file: string;
  names: string[];
}

/** The rows of the map's tables and the tests each cites. */
export function citations(markdown: string): { cited: Cited[]; bare: number[] } {
  const cited: Cited[] = [];
  const bare: number[] = [];
  markdown.split('\n').forEach((line, i) => {
    if (!line.startsWith('|') || /^\|\s*(---|promise\s*\|)/.test(line)) return;
    const cell = line.split(' | ').at(-1) ?? '';
    const before = cited.length;
    for (const m of cell.matchAll(/`(tests\/[^`]+\.test\.ts)`|"([^"]+)"/g)) {
      if (m[1] !== undefined) cited.push({ row: i + 1, file: m[1], names: [] });
      else if (cited.length > before) cited.at(-1)!.names.push(m[2]!);
    }
    if (cited.length === before) bare.push(i + 1);
  });
  return { cited, bare };
}

/** The names of a test file's tests and describe blocks, as written (quotes unescaped, whitespace collapsed). */
export function testNames(source: string): string[] {
  const names: string[] = [];
  for (const m of source.matchAll(/\b(?:it|test|describe)(?:\.\w+)*\(\s*(['"`])((?:\\.|(?!\1)[\s\S])*?)\1/g)) {
    names.push(m[2]!.replace(/\\(['"`\\])/g, '$1').replace(/\s+/g, ' '));
  }
  return names;
}

/** What is wrong with the citations, one line each. */
export function problems(cited: Cited[], read: (file: string) => string | undefined): string[] {
  const out: string[] = [];
  for (const c of cited) {
    const source = read(c.file);
    if (source === undefined) {
      out.push(`docs/contract.md:${c.row}: ${c.file} does not exist`);
      continue;
    }
    const names = testNames(source);
    for (const name of c.names) if (!names.some((n) => n.includes(name))) out.push(`docs/contract.md:${c.row}: no test in ${c.file} is named with "${name}"`);
  }
  return out;
}

const readRepoFile = (file: string) => (existsSync(join(repoRoot, file)) ? readFileSync(join(repoRoot, file), 'utf8') : undefined);

describe('the contract map (docs/contract.md)', () => {
  const map = citations(readFileSync(join(repoRoot, 'docs/contract.md'), 'utf8'));

  it('lists a test for every promise', () => {
    expect(map.cited.length).toBeGreaterThan(100);
    expect(map.bare, 'rows of docs/contract.md that cite no test file').toEqual([]);
  });

  it('names only test files that exist and tests that are in them', () => {
    expect(problems(map.cited, readRepoFile)).toEqual([]);
  });

  it('the check finds a missing file, a renamed test and a row without a test', () => {
    const sample = [
      '| promise | made in | tests |',
      '| --- | --- | --- |',
      '| a | README | `tests/x.test.ts` "kept"; `tests/y.test.ts` "gone" |',
      '| b | README | nothing |',
    ].join('\n');
    const { cited, bare } = citations(sample);
    expect(bare).toEqual([4]);
    const files: Record<string, string> = { 'tests/x.test.ts': `it('is kept, it\\'s here', () => {});` };
    expect(problems(cited, (f) => files[f])).toEqual(['docs/contract.md:3: tests/y.test.ts does not exist']);
    files['tests/y.test.ts'] = `it.concurrent("renamed", async () => {});`;
    expect(problems(cited, (f) => files[f])).toEqual(['docs/contract.md:3: no test in tests/y.test.ts is named with "gone"']);
  });
});
