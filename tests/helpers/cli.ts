import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const bin = fileURLToPath(new URL('../../bin/scorejob', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout lines that are JSON log records. */
  logs: Record<string, unknown>[];
}

/** Environment of a child scorejob: only what the test gives, plus PATH and HOME (no stray PG* variables). */
export function childEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...env };
}

/** Starts `scorejob ...args` (the built CLI, as a user runs it). */
export function startCli(args: string[], env: Record<string, string | undefined> = {}): ChildProcess & { result: Promise<CliResult> } {
  const child = spawn(process.execPath, [bin, ...args], { cwd: repoRoot, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, logs: parseLogs(stdout) }));
  });
  return Object.assign(child, { result });
}

/** Runs `scorejob ...args` to completion. */
export function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return startCli(args, env).result;
}

export function parseLogs(stdout: string): Record<string, unknown>[] {
  const logs: Record<string, unknown>[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not a log line
    }
  }
  return logs;
}

/** Resolves when the child's stdout has a log line matching the predicate. */
export function waitForLog(child: ChildProcess, predicate: (log: Record<string, unknown>) => boolean, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error('timed out waiting for a log line')), timeoutMs);
    const onData = (d: Buffer | string) => {
      buffer += d.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        for (const log of parseLogs(line)) {
          if (predicate(log)) {
            clearTimeout(timer);
            child.stdout?.off('data', onData);
            resolve(log);
            return;
          }
        }
      }
    };
    child.stdout?.on('data', onData);
    child.on('close', () => {
      clearTimeout(timer);
      reject(new Error('process ended before the expected log line'));
    });
  });
}

/**
 * Every log line of a child so far, and a wait for one that may already have been printed (a line
 * printed in the same write as an earlier one is not missed); a timeout names what it waited for and
 * shows the child's last lines.
 */
export function follow(child: ChildProcess): {
  logs: Record<string, unknown>[];
  until(what: string, p: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
} {
  const logs: Record<string, unknown>[] = [];
  let buffer = '';
  child.stdout?.on('data', (d: Buffer | string) => {
    buffer += d.toString();
    const nl = buffer.lastIndexOf('\n');
    if (nl < 0) return;
    logs.push(...parseLogs(buffer.slice(0, nl)));
    buffer = buffer.slice(nl + 1);
  });
  return {
    logs,
    until: async (what, p, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = logs.find(p);
        if (hit) return hit;
        if (Date.now() > deadline || child.exitCode !== null || child.signalCode !== null) {
          throw new Error(
            `no log line ${what} (pid ${child.pid}, exit ${child.exitCode ?? child.signalCode}); last lines:\n${logs
              .slice(-8)
              .map((l) => JSON.stringify(l))
              .join('\n')}`,
          );
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}
