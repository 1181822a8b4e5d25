import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { cliReference, cliReferenceFile, commandsOf } from '../../scripts/cliReference.js';
import { repoRoot, runCli } from '../helpers/cli.js';

/** docs/cli.md is generated from the command definitions; CI fails when someone changes one without the other. */
describe('docs/cli.md, the CLI reference', () => {
  it('is what `npm run docs:cli` generates from src/cli/program.ts (if not: run npm run docs:cli and commit docs/cli.md)', async () => {
    expect(await readFile(cliReferenceFile, 'utf8')).toBe(cliReference());
  });

  it('shows, for every command, exactly what the built `scorejob <command> --help` prints', async () => {
    const doc = await readFile(cliReferenceFile, 'utf8');
    const names = ['', ...commandsOf(buildProgram()).map((c) => c.name)];
    expect(names.length).toBeGreaterThan(12);
    for (const name of names) {
      const args = [...(name === '' ? [] : name.split(' ')), '--help'];
      const r = await runCli(args);
      expect(r.code, `scorejob ${args.join(' ')}`).toBe(0);
      const heading = `## scorejob${name === '' ? '' : ` ${name}`}\n\n\`\`\`text\n`;
      expect(doc, `docs/cli.md has a section for scorejob ${name}`).toContain(`${heading}${r.stdout.trimEnd()}\n\`\`\``);
    }
  }, 120_000);

  it('the schedule synopsis in docs/operations.md names every option of `scorejob schedule`', async () => {
    const page = await readFile(join(repoRoot, 'docs/operations.md'), 'utf8');
    const synopsis = /```text\n(scorejob schedule [\s\S]*?)```/.exec(page)?.[1] ?? '';
    const schedule = commandsOf(buildProgram()).find((c) => c.name === 'schedule')!.cmd;
    const flags = schedule.options.map((o) => o.long!).filter((f) => f !== '--help');
    expect(flags.length).toBeGreaterThan(10);
    expect(flags.filter((f) => !synopsis.includes(`[${f}`))).toEqual([]);
  });
});
