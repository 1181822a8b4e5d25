import { createRequire } from 'node:module';
import { main } from '../../src/cli/program.js';
import { childEnv, parseLogs, type CliResult } from './cli.js';

/** The CommonJS `fs` object, the one pino's destination (sonic-boom) writes fd 1 and 2 through. */
const fs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');

/** Thrown in place of `process.exit` inside an in-process call: the call ends with its code. */
class ExitCalled extends Error {
  constructor(readonly code: number) {
    super(`process.exit(${code})`);
  }
}

let busy = false;

/** Swaps `process.env`'s contents for `env` (in place: modules that kept a reference see the change); returns the undo. */
function swapEnv(env: NodeJS.ProcessEnv): () => void {
  const saved = { ...process.env };
  const replace = (next: NodeJS.ProcessEnv) => {
    for (const k of Object.keys(process.env)) delete process.env[k];
    for (const [k, v] of Object.entries(next)) if (v !== undefined) process.env[k] = v;
  };
  replace(env);
  return () => replace(saved);
}

/** Sets `obj[key]` to `value` as an own property; returns the undo (the own property it had, or none). */
function patch<T extends object, K extends keyof T>(obj: T, key: K, value: T[K]): () => void {
  const had = Object.getOwnPropertyDescriptor(obj, key);
  Object.defineProperty(obj, key, { value, configurable: true, writable: true, enumerable: had?.enumerable ?? true });
  return () => {
    if (had) Object.defineProperty(obj, key, had);
    else delete obj[key];
  };
}

/** Sends what the command writes to fd 1 and 2 (process.stdout/stderr and pino's synchronous destination) into the two strings. */
function capture(out: { stdout: string; stderr: string }): () => void {
  const original = fs.writeSync;
  const text = (chunk: unknown, encoding?: unknown) =>
    typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString(typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  const sink = (key: 'stdout' | 'stderr') =>
    ((chunk: unknown, encoding?: unknown, cb?: unknown) => {
      out[key] += text(chunk, encoding);
      const done = typeof encoding === 'function' ? encoding : cb;
      if (typeof done === 'function') queueMicrotask(() => (done as () => void)());
      return true;
    }) as typeof process.stdout.write;
  const writeSync = ((fd: number, buffer: unknown, ...rest: unknown[]) => {
    if (fd !== 1 && fd !== 2) return (original as (...a: unknown[]) => number)(fd, buffer, ...rest);
    out[fd === 1 ? 'stdout' : 'stderr'] += text(buffer);
    return typeof buffer === 'string' ? Buffer.byteLength(buffer) : (buffer as Uint8Array).byteLength;
  }) as typeof fs.writeSync;
  const undo = [
    patch(process.stdout, 'write', sink('stdout')),
    patch(process.stderr, 'write', sink('stderr')),
    patch(fs, 'writeSync', writeSync),
    // A child's stdout and stderr are pipes: no terminal, so JSON logs and no colours.
    patch(process.stdout, 'isTTY', undefined as unknown as boolean),
    patch(process.stderr, 'isTTY', undefined as unknown as boolean),
  ];
  return () => {
    for (const u of undo.reverse()) u();
  };
}

/**
 * Runs `scorejob ...args` in this process (src/, through the same `main` as bin/scorejob) and returns
 * what a child would have given: exit code, stdout, stderr, log lines. The environment is only what the
 * test gives plus PATH and HOME, as for a child; process.exitCode and process.exit are taken back after.
 * For behaviour, where the process is not the subject: signals, kill -9, the bin/ scripts and cron
 * stay with `runCli`. Calls cannot overlap (one process has one environment and one stdout).
 */
export async function runCliInProcess(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  if (busy) throw new Error('in-process scorejob calls cannot overlap; start concurrent commands with startCli');
  busy = true;
  const out = { stdout: '', stderr: '' };
  const exitCodeBefore = process.exitCode;
  const listeners = { SIGINT: process.listenerCount('SIGINT'), SIGTERM: process.listenerCount('SIGTERM') };
  const restoreEnv = swapEnv(childEnv(env));
  const restoreOutput = capture(out);
  process.exitCode = undefined;
  const restoreExit = patch(process, 'exit', (code?: number | string | null) => {
    throw new ExitCalled(Number(code ?? process.exitCode ?? 0));
  });
  let code: number;
  try {
    code = await main(['node', 'scorejob', ...args]);
  } catch (err) {
    if (!(err instanceof ExitCalled)) throw err;
    code = err.code;
  } finally {
    restoreExit();
    process.exitCode = exitCodeBefore;
    restoreOutput();
    restoreEnv();
    busy = false;
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    if (process.listenerCount(signal) !== listeners[signal]) throw new Error(`scorejob ${args.join(' ')} left a ${signal} handler behind`);
  }
  return { code, signal: null, stdout: out.stdout, stderr: out.stderr, logs: parseLogs(out.stdout) };
}
