import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
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
