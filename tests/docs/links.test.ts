import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';
import { docPages } from '../helpers/docBlocks.js';

/**
 * Pages another branch writes at the same time; a link to one is allowed to dangle until that branch is
 * merged (then delete it from this list).
 */
const pendingPages = new Set<string>();

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of withoutFences(markdown).split('\n')) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const text = h[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const slug = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

function withoutFences(markdown: string): string {
  return markdown.replace(/^\s*```[\s\S]*?^\s*```\s*$/gm, '');
}

/** The text outside fenced blocks and inline code, where a link is a link. */
function withoutCode(markdown: string): string {
  return withoutFences(markdown).replace(/`[^`\n]*`/g, '');
}

function linksOf(file: string): { target: string; line: string }[] {
  const text = withoutCode(readFileSync(join(repoRoot, file), 'utf8'));
  const out: { target: string; line: string }[] = [];
  for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push({ target: m[1]!, line: m[0] });
  return out;
}

const pages = [...docPages(), 'CONTRIBUTING.md', 'CHANGELOG.md'];

describe('links between the docs', () => {
  it('the link checker finds anchors the way GitHub makes them', () => {
    expect([...anchorsOf('# Exit codes\n## What a run reads of the source\n## `scorejob run` (options)\n## Exit codes\n```\n# not a heading\n```')]).toEqual([
      'exit-codes',
      'what-a-run-reads-of-the-source',
      'scorejob-run-options',
      'exit-codes-1',
    ]);
  });

  for (const file of pages) {
    it(`every relative link and #anchor in ${file} resolves`, () => {
      const broken: string[] = [];
      for (const { target } of linksOf(file)) {
        if (/^[a-z]+:/i.test(target)) continue;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const resolved = path === '' ? file : normalize(relative(repoRoot, join(repoRoot, dirname(file), path)));
        if (pendingPages.has(resolved)) continue;
        if (!existsSync(join(repoRoot, resolved))) {
          broken.push(`${target}: no file ${resolved}`);
          continue;
        }
        if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOf(readFileSync(join(repoRoot, resolved), 'utf8')).has(anchor)) {
          broken.push(`${target}: no heading #${anchor} in ${resolved}`);
        }
      }
      expect(broken).toEqual([]);
    });
  }

  it('every file path the pages name (src/, tests/, scripts/, sql/, deploy/) exists', () => {
    const missing: string[] = [];
    for (const file of pages) {
      const text = readFileSync(join(repoRoot, file), 'utf8');
      for (const m of text.matchAll(/\b(?:src|tests|scripts|sql|deploy)\/[\w./-]+\.(?:ts|sql|yaml|mjs)\b/g)) {
        const path = m[0];
        if (/NNN/.test(path) || path.includes('*')) continue;
        if (!existsSync(join(repoRoot, path))) missing.push(`${file}: ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
