import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { childEnv, repoRoot } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modelCopy, runInProcess } from '../helpers/run.js';

/** A command on a pseudo-terminal (stdin, stdout and stderr all a tty), as a person runs it: everything it printed. */
function inPty(args: string[], env: Record<string, string>): Promise<{ code: number | null; text: string }> {
  const command = [process.execPath, join(repoRoot, 'bin/scorejob'), ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: repoRoot,
      env: childEnv({ ...env, TERM: 'xterm' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (text += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, text }));
  });
}

const occurrences = (text: string, needle: string) => text.split(needle).length - 1;

/** Issue 11 item 12 and its "Minor" list: what scorejob says about a failure is said once, right, and where it belongs. */
describe('what scorejob says about a failure', () => {
  let t: TestDatabase;
  /** The shipped model with a NaN bias: every score NaN, so every run of it fails the reject gate. */
  let nan: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 200, seed: 5 });
    await runInProcess(t, { chunkSize: 100 });
    nan = await modelCopy();
    const weights = join(nan, 'weights.bin');
    const bytes = await readFile(weights);
    bytes.writeFloatLE(Number.NaN, bytes.length - 4);
    await writeFile(weights, bytes);
  });
  afterAll(async () => t.drop());

  it('`runs show 99 --json` for a missing run: stdout empty, the error on stderr, exit 2', async () => {
    for (const args of [
      ['runs', 'show', '99', '--json'],
      ['runs', '--json', 'show', '99'],
      ['runs', '--json', '--status', 'gone'],
    ]) {
      const r = await runCliInProcess(args, t.env);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect((await runCliInProcess(['runs', 'show', '99', '--json'], t.env)).stderr).toBe('scorejob: there is no run 99 (see `scorejob runs`)\n');
    // And when it works, stdout is exactly one JSON document.
    const ok = await runCliInProcess(['runs', 'show', '1', '--json'], t.env);
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { run_id: string }).run_id).toBe('1');
  });

  it("an escape sequence in a manifest's name or version reaches `runs` and `runs show` escaped, never raw", async () => {
    const evil = await modelCopy((m) => {
      m.name = 'value\u001b[2J\u001b[31mred';
      m.version = '1.0\u0007\u202e';
    });
    const r = await runCliInProcess(['run', '--model', evil, '--chunk-size', '100'], t.env);
    expect(r.code).toBe(0);
    const runId = String(r.logs.at(-1)?.run_id);
    for (const args of [['runs'], ['runs', 'show', runId]]) {
      const out = await runCliInProcess(args, t.env);
      expect(out.code).toBe(0);
      expect(out.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/);
      expect(out.stdout).toContain('value\\x1b[2J\\x1b[31mred 1.0\\x07\\u{202e}');
    }
    // Machines get the value itself, JSON-escaped.
    const json = JSON.parse((await runCliInProcess(['runs', 'show', runId, '--json'], t.env)).stdout) as { model: string };
    expect(json.model).toBe('value\u001b[2J\u001b[31mred');
  });

  it.skipIf(!existsSync('/usr/bin/script'))('on a terminal a failed run says its error once', async () => {
    const r = await inPty(['run', '--model', nan, '--chunk-size', '100'], t.env);
    expect(r.code).toBe(1);
    expect(occurrences(r.text, 'rejected 100.00% of rows (200 of 200)')).toBe(1);
    // The one it says carries the advice.
    expect(r.text).toMatch(/rejected 100\.00% of rows \(200 of 200\).*then start a new run \(`scorejob run`\)/);
  });

  it.skipIf(!existsSync('/usr/bin/script'))('on a terminal a usage error is said once', async () => {
    const r = await inPty(['run', '--chunk-size', 'abc'], t.env);
    expect(r.code).toBe(2);
    expect(occurrences(r.text, '--chunk-size: "abc" is not a whole number')).toBe(1);
  });

  it('in a pipe a failed run logs its error once (a JSON line) and says it once on stderr', async () => {
    const r = await runCliInProcess(['run', '--model', nan, '--chunk-size', '100'], t.env);
    const errorLines = r.logs.filter((l) => l.level === 50);
    expect(r.code).toBe(1);
    expect(errorLines).toHaveLength(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(String(errorLines[0]?.msg)).toBe(r.stderr.trim().replace(/^scorejob: /, ''));
  });
});

describe('configuration errors name what was set', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t.drop());

  it('an environment variable, not the flag', async () => {
    const cases: [Record<string, string>, string[], RegExp][] = [
      [{ SCOREJOB_SCHEMA: '' }, ['runs'], /^scorejob: SCOREJOB_SCHEMA: "" is not a schema name/],
      [{ SCOREJOB_LOG_LEVEL: 'loud' }, ['runs'], /^scorejob: SCOREJOB_LOG_LEVEL: "loud" is not one of fatal, error/],
      [{ SCOREJOB_LOG_LEVEL: 'loud' }, ['run'], /^scorejob: SCOREJOB_LOG_LEVEL: "loud" is not one of fatal, error/],
      [{ SCOREJOB_BACKEND: 'gpu' }, ['run'], /^scorejob: SCOREJOB_BACKEND: "gpu" is not one of auto, tensorflow, wasm, cpu/],
      [{ SCOREJOB_BACKEND: 'gpu' }, ['schedule'], /^scorejob: SCOREJOB_BACKEND: "gpu" is not one of auto, tensorflow, wasm, cpu/],
    ];
    for (const [env, args, message] of cases) {
      const r = await runCliInProcess(args, { ...t.env, ...env });
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.code).toBe(2);
    }
    // The flag, when the flag was given (over the variable).
    expect((await runCliInProcess(['--schema', '', 'runs'], { ...t.env, SCOREJOB_SCHEMA: 'x' })).stderr).toMatch(
      /^scorejob: --schema: "" is not a schema name/,
    );
    expect((await runCliInProcess(['run', '--backend', 'gpu'], { ...t.env, SCOREJOB_BACKEND: 'cpu' })).stderr).toMatch(/^scorejob: --backend: "gpu"/);
  });

  it('an unknown layer class in model.json: one line naming the file and the class', async () => {
    const dir = await modelCopy();
    const file = join(dir, 'model.json');
    await writeFile(file, (await readFile(file, 'utf8')).replace(/"class_name": ?"Dense"/, '"class_name":"FancyDense"'));
    const r = await runCliInProcess(['model', 'inspect', dir, '--no-db'], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/model\.json: TF\.js cannot load the model: unknown layer class FancyDense/);
  });

  it('`scorejob` with no command: usage on stderr, exit 2', async () => {
    const r = await runCliInProcess([], t.env);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^Usage: scorejob \[options\] \[command\]/);
    // Asked for, help is not an error.
    const help = await runCliInProcess(['--help'], t.env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: scorejob/);
  });

  it('--progress-interval below 0.1 s is refused (0 still means none)', async () => {
    for (const [args, env] of [
      [['run', '--progress-interval', '0.001'], {}],
      [['run'], { SCOREJOB_PROGRESS_INTERVAL: '0.05' }],
    ] as const) {
      const r = await runCliInProcess([...args], { ...t.env, ...env });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /^scorejob: (--progress-interval|SCOREJOB_PROGRESS_INTERVAL): "0\.0+[15]" is not 0 \(no progress lines\) or a number of seconds from 0\.1 to 86400/,
      );
    }
  });
});
