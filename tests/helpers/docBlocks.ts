import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './cli.js';

/** A fenced code block of a doc page, with what the comments right above it tell the tests. */
export interface DocBlock {
  /** `README.md`, `docs/models.md`, … */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  code: string;
  /** `<!-- not run in tests: REASON -->` right above the block: why it cannot run here. */
  notRun: string | undefined;
  /** `<!-- before this block in tests: COMMANDS -->`: what the reader has done before it (shell). */
  setup: string | undefined;
}

/** The pages a user reads: README.md and docs/*.md (docs/cli.md is generated and holds no commands to copy). */
export function docPages(): string[] {
  const docs = readdirSync(join(repoRoot, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs.sort()];
}

const notRunComment = /^<!--\s*not run in tests:\s*([\s\S]*?)\s*-->$/;
const setupComment = /^<!--\s*before this block in tests:\s*([\s\S]*?)\s*-->$/;

/** Every fenced block of a page; comments are read from the lines just above the fence (blank lines between allowed). */
export function blocksOf(file: string, text = readFileSync(join(repoRoot, file), 'utf8')): DocBlock[] {
  const lines = text.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    let end = i + 1;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end]!)) end++;
    if (end === lines.length) throw new Error(`${file}:${i + 1}: a code block that is never closed`);
    const code = lines
      .slice(i + 1, end)
      .map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length)))
      .join('\n');
    let notRun: string | undefined;
    let setup: string | undefined;
    for (let j = i - 1; j >= 0; j--) {
      const above = lines[j]!.trim();
      if (above === '') continue;
      const skip = notRunComment.exec(above);
      const before = setupComment.exec(above);
      if (skip) notRun = skip[1];
      else if (before) setup = before[1];
      else break;
    }
    blocks.push({ file, line: i + 1, lang: open[2]!, code, notRun, setup });
    i = end;
  }
  return blocks;
}

/** Shell blocks a user would copy into a terminal. */
export const isShell = (b: DocBlock) => ['sh', 'bash', 'shell'].includes(b.lang);
