import { describe, expect, it } from 'vitest';
import { blocksOf } from '../helpers/docBlocks.js';

/** How the docs tests read a page: what runs, what does not and why, what comes before. */
describe('blocksOf', () => {
  const page = [
    'Text.',
    '<!-- not run in tests: needs a Kubernetes cluster -->',
    '```sh',
    'kubectl apply -f deploy/kubernetes/',
    '```',
    '',
    '<!-- before this block in tests: scorejob migrate -->',
    '',
    '```sh',
    'scorejob run',
    '```',
    '1. A step:',
    '',
    '   ```sql',
    '   SELECT 1;',
    '   ```',
  ].join('\n');

  it('reads the language, the code (indentation of a list item removed) and the comments right above a block', () => {
    expect(blocksOf('x.md', page)).toEqual([
      { file: 'x.md', line: 3, lang: 'sh', code: 'kubectl apply -f deploy/kubernetes/', notRun: 'needs a Kubernetes cluster', setup: undefined },
      { file: 'x.md', line: 9, lang: 'sh', code: 'scorejob run', notRun: undefined, setup: 'scorejob migrate' },
      { file: 'x.md', line: 14, lang: 'sql', code: 'SELECT 1;', notRun: undefined, setup: undefined },
    ]);
  });

  it('refuses a block that is never closed (it would swallow the rest of the page)', () => {
    expect(() => blocksOf('x.md', 'a\n```sh\nscorejob run\n')).toThrow(/x\.md:2: a code block that is never closed/);
  });
});
