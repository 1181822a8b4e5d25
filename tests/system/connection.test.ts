import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startOwnServer, type OwnServer } from '../helpers/ownServer.js';

const secret = 'hunter2-Sup3rSecret';

function expectNoSecret(r: CliResult, ...secrets: string[]): void {
  for (const s of secrets) {
    expect(r.stdout).not.toContain(s);
    expect(r.stderr).not.toContain(s);
  }
}

describe('connection configuration', () => {
  let server: OwnServer;
  beforeAll(async () => {
    // A server of the test's own with password authentication, whatever TEST_DATABASE_URL allows
    // (of TEST_DATABASE_URL's version when it is set, embedded PostgreSQL otherwise).
    server = await startOwnServer();
  });
  afterAll(async () => server?.stop());

  it('a malformed DATABASE_URL exits 2 with one line naming the variable, never its value', async () => {
    const r = await runCli(['migrate'], { DATABASE_URL: `mysql://admin:${secret}@db.example/prod` });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('DATABASE_URL');
    expectNoSecret(r, secret);
  });

  it('an unreachable server exits 1 with one clear line and no password', async () => {
    const r = await runCli(['migrate'], { DATABASE_URL: `postgres://admin:${secret}@127.0.0.1:1/prod` });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot connect to PostgreSQL admin@127\.0\.0\.1:1\/prod: connection to 127\.0\.0\.1:1 refused/);
    expectNoSecret(r, secret);
  });

  it('PGPASSWORD never appears either', async () => {
    const r = await runCli(['migrate', '--log-level', 'trace'], { PGHOST: '127.0.0.1', PGPORT: '1', PGUSER: 'admin', PGPASSWORD: secret, PGDATABASE: 'prod' });
    expect(r.code).toBe(1);
    expectNoSecret(r, secret);
  });

  it('a wrong password exits 2 (configuration to fix) and does not echo either password', async () => {
    const url = new URL(server.url);
    const real = decodeURIComponent(url.password);
    url.password = secret;
    const r = await runCli(['migrate', '--log-level', 'trace'], { DATABASE_URL: url.toString() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/password authentication failed for user "postgres"/);
    expectNoSecret(r, secret, real);
  });

  it('the right password works and is not logged at any level', async () => {
    const real = decodeURIComponent(new URL(server.url).password);
    const r = await runCli(['migrate', '--log-level', 'trace'], { DATABASE_URL: server.url });
    expect(r.code).toBe(0);
    expect(r.logs.length).toBeGreaterThan(0);
    expectNoSecret(r, real);
  });
});

describe('command line', () => {
  it('--help and --version exit 0', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('migrate');
    const version = await runCli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('an unknown flag exits 2 with one line naming it', async () => {
    const r = await runCli(['migrate', '--frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--frobnicate');
  });

  it('a bad --log-level exits 2 naming the flag', async () => {
    const r = await runCli(['migrate', '--log-level', 'loud']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--log-level');
  });
});

/**
 * A job nobody pointed at a database must not pick one: with none of DATABASE_URL, PGHOST, PGDATABASE
 * set, libpq's defaults would reach whatever database is there (another team's), and "run scorejob
 * migrate" would then create the schema in it.
 */
describe('which database', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
  });
  afterAll(async () => t?.drop());

  const refusal =
    /^scorejob: no database configured \(none of DATABASE_URL, PGHOST, PGDATABASE is set; libpq's defaults would reach postgres@localhost:1\/postgres\): set DATABASE_URL=postgres:\/\/user@host:port\/database .*--libpq-defaults/;

  it('with no connection set, refuses (exit 2, one line saying how to set one); set as it says, the command works', async () => {
    for (const args of [['migrate'], ['runs'], ['run'], ['model', 'inspect'], ['seed', '--customers', '10']]) {
      // Port 1: should the job connect anyway, it fails there instead of touching a real database.
      const r = await runCli(args, { PGUSER: 'postgres', PGPORT: '1' });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0], args.join(' ')).toMatch(refusal);
    }
    // Blank values, as a misspelt or half-loaded env file leaves them, count as unset.
    const blank = await runCli(['migrate'], { DATABASE_URL: '', PGHOST: '', PGDATABASE: '', PGUSER: 'postgres', PGPORT: '1' });
    expect(blank.code).toBe(2);
    expect(blank.stderr).toMatch(refusal);
    const { rows } = await t.pool.query<{ n: string }>(`SELECT count(*) AS n FROM pg_namespace WHERE nspname = 'scoring'`);
    expect(rows[0]!.n).toBe('0');
    const followed = await runCli(['migrate'], { DATABASE_URL: t.url });
    expect(followed.code, followed.stderr).toBe(0);
  });

  it('PGSERVICE alone is refused: scorejob cannot read pg_service.conf, and says what to set instead', async () => {
    const r = await runCli(['runs'], { PGSERVICE: 'crm', PGPORT: '1' });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/PGSERVICE=crm is set, but scorejob does not read pg_service\.conf: set DATABASE_URL/);
  });

  it('--libpq-defaults (or SCOREJOB_LIBPQ_DEFAULTS=1) says the defaults are meant: the job connects there, naming the database', async () => {
    // Port 1: nothing listens, so the attempt shows where the defaults lead without touching any database.
    const flag = await runCli(['--libpq-defaults', 'runs'], { PGUSER: 'nobody_here', PGPORT: '1' });
    const env = await runCli(['runs'], { PGUSER: 'nobody_here', PGPORT: '1', SCOREJOB_LIBPQ_DEFAULTS: '1' });
    for (const r of [flag, env]) {
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^scorejob: cannot connect to PostgreSQL nobody_here@localhost:1\/nobody_here: /);
    }
    const wrong = await runCli(['runs'], { SCOREJOB_LIBPQ_DEFAULTS: 'maybe', PGPORT: '1' });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/SCOREJOB_LIBPQ_DEFAULTS: "maybe" is not 1 or 0/);
  });

  it('commands that need no database still work without one', async () => {
    expect((await runCli(['--help'])).code).toBe(0);
    expect((await runCli(['seed', '--help'])).code).toBe(0);
    const inspect = await runCli(['model', 'inspect', '--no-db']);
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(inspect.stdout).toContain('customer-value');
  });

  it('an un-migrated database is named in the refusal, and the advice works when followed', async () => {
    const other = await createTestDatabase({ migrated: false });
    try {
      const r = await runCli(['runs'], other.env);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(
        `database ${other.db.user}@${other.db.host}:${other.db.port}/${other.name} is not migrated for scorejob (schema "scoring" is missing): if this is the right database, run \`scorejob migrate\``,
      );
      expect((await runCli(['migrate'], other.env)).code).toBe(0);
      expect((await runCli(['runs'], other.env)).code).toBe(0);
    } finally {
      await other.drop();
    }
  });
});
