import { Command } from 'commander';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { addSettings, chunkSize, forwardedArgs, forwardedRunSettings, maxPsi, metricsFile, model, nameOf, read } from '../../../src/cli/options.js';
import { defaults, shippedModelDir } from '../../../src/config.js';

/** A command taking the options `schedule` forwards, parsed from argv with the given environment. */
function parsed(argv: string[], env: Record<string, string> = {}): Command {
  Object.assign(process.env, env);
  const cmd = addSettings(new Command('t').exitOverride(), forwardedRunSettings);
  cmd.parse(argv, { from: 'user' });
  return cmd;
}

describe('options defined once: flag, then environment, then default', () => {
  const set: string[] = [];
  afterEach(() => {
    for (const k of set.splice(0)) delete process.env[k];
  });
  const env = (vars: Record<string, string>) => (set.push(...Object.keys(vars)), vars);

  it('a flag wins over the variable, the variable over the default; a message names where the value came from', () => {
    expect(read(parsed([]), chunkSize)).toBe(defaults.chunkSize);
    const fromEnv = parsed([], env({ SCOREJOB_CHUNK_SIZE: '700' }));
    expect(read(fromEnv, chunkSize)).toBe(700);
    expect(nameOf(fromEnv, chunkSize)).toBe('SCOREJOB_CHUNK_SIZE');
    const fromFlag = parsed(['--chunk-size', '900'], env({ SCOREJOB_CHUNK_SIZE: 'abc' }));
    expect(read(fromFlag, chunkSize)).toBe(900);
    expect(() => read(parsed([], env({ SCOREJOB_CHUNK_SIZE: 'abc' })), chunkSize)).toThrow(/^SCOREJOB_CHUNK_SIZE: "abc" is not a whole number/);
    expect(() => read(parsed(['--chunk-size', 'abc']), chunkSize)).toThrow(/^--chunk-size: "abc" is not a whole number/);
  });

  it('an empty variable for a path or an optional gate counts as unset', () => {
    const cmd = parsed([], env({ SCOREJOB_MAX_PSI: '', SCOREJOB_METRICS_FILE: '', SCOREJOB_MODEL_DIR: '' }));
    expect(read(cmd, maxPsi)).toBeUndefined();
    expect(read(cmd, metricsFile)).toBeUndefined();
    expect(read(cmd, model) ?? shippedModelDir).toBe(shippedModelDir);
  });

  it('schedule passes on the flags given, paths made absolute, and not what the child reads from the environment itself', () => {
    const cmd = parsed(['--model', 'some/dir', '--max-psi', '0.2', '--progress-interval', '5'], env({ SCOREJOB_KEEP_RUNS: '3' }));
    expect(forwardedArgs(cmd)).toEqual(['--model', resolve('some/dir'), '--max-psi', '0.2', '--progress-interval', '5']);
    expect(forwardedArgs(parsed([]))).toEqual([]);
  });
});
