import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { childEnv, parseLogs, repoRoot, type CliResult } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdRunLock } from '../helpers/hold.js';
import { modelCopy, runInProcess } from '../helpers/run.js';

/** A model name a shell would split and unquote: the advice must quote it. */
const name = `churn "v2" it's`;
const schema = 'scores_alt';

/** Runs a command line as a person pastes it into a shell, with `scorejob` on the PATH. */
function inShell(line: string, env: Record<string, string>): Promise<CliResult> {
  const child = spawn('sh', ['-c', line], {
    cwd: repoRoot,
    env: childEnv({ ...env, PATH: `${join(repoRoot, 'bin')}:${process.env.PATH ?? ''}` }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, logs: parseLogs(stdout) }));
  });
}

/** `scorejob model retire` as a user runs it, in a schema of another name, for a model whose name needs quoting. */
describe('scorejob model retire', () => {
  let t: TestDatabase;
  let runId: string;
  const rowsOf = async (model: string): Promise<number> =>
    (await t.pool.query<{ n: number }>(`SELECT count(*)::int n FROM ${schema}.customer_scores WHERE model_name = $1`, [model])).rows[0]?.n ?? -1;

  beforeAll(async () => {
    t = await createTestDatabase({ schema });
    await seedCustomers(t.pool, { customers: 200, seed: 3, nullFraction: 0 });
    const dir = await modelCopy((m) => (m.name = name));
    runId = (await runInProcess(t, { modelDir: dir, chunkSize: 100 }, schema)).runId;
    await runInProcess(t, { chunkSize: 100 }, schema);
  });
  afterAll(async () => t.drop());

  it('without --confirm: exit 2, one line with the rows that would leave and the command that confirms; following it retires the model', async () => {
    const r = await runCliInProcess(['--schema', schema, 'model', 'retire', name], t.env);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`takes its 200 rows (run ${runId}) out of ${schema}.customer_scores`);
    expect(await rowsOf(name)).toBe(200);
    const advice = /; to do it: (.+)$/.exec(lines[0] as string)?.[1] as string;
    expect(advice).toBe(`scorejob --schema ${schema} model retire 'churn "v2" it'\\''s' --confirm 'churn "v2" it'\\''s'`);

    // A host's hook (SCOREJOB_ON_PUBLISH_COMMAND) hears of the retire, after its commit.
    const heard = join(await mkdtemp(join(tmpdir(), 'sj-retire-')), 'hook.txt');
    const hook = `echo "$SCOREJOB_PUBLISH_KIND [$SCOREJOB_RUN_ID] $SCOREJOB_PREVIOUS_RUN_ID $SCOREJOB_MODEL_NAME" > ${heard}`;
    const done = await inShell(advice, { ...t.env, SCOREJOB_ON_PUBLISH_COMMAND: hook });
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    expect(await readFile(heard, 'utf8')).toBe(`retire [] ${runId} ${name}\n`);
    const line = done.logs.find((l) => l.retire === true);
    expect(line).toMatchObject({ level: 40, model: name, run_id: runId, rows: 200 });
    expect(String(line?.msg)).toMatch(
      /The model's next `scorejob run` \(cron, schedule\) publishes it again; `scorejob --schema scores_alt rollback --model-name 'churn "v2" it'\\''s'` puts run \d+ back$/,
    );
    expect(await rowsOf(name)).toBe(0);
    expect(await rowsOf('customer-value')).toBe(200);
  });

  it('`runs` and `runs show` show the retire', async () => {
    const list = await runCliInProcess(['--schema', schema, 'runs'], t.env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(
      new RegExp(`\\nRetired models \\(newest first\\):\\n  \\S+ \\S+ UTC  churn "v2" it's: run ${runId} taken out of customer_scores by \\S+\\n`),
    );
    const show = await runCliInProcess(['--schema', schema, 'runs', 'show', runId], t.env);
    expect(show.stdout).toMatch(/\n {2}retired {6}\S+ by \S+ \(its model left customer_scores\)\n/);
    expect(show.stdout).not.toMatch(/customer_scores shows this run now/);
  });

  it('again: exit 0 and a line saying it is already retired; an unknown model: exit 2 naming the models', async () => {
    const again = await runCliInProcess(['--schema', schema, 'model', 'retire', name, '--confirm', name], t.env);
    expect(again.code).toBe(0);
    expect(again.stderr).toBe('');
    expect(
      again.logs.some((l) =>
        /^model churn "v2" it's is already retired \(run \d+ left scores_alt\.customer_scores on \S+ at \S+, by \S+\); nothing to do$/.test(String(l.msg)),
      ),
    ).toBe(true);
    const unknown = await runCliInProcess(['--schema', schema, 'model', 'retire', 'churn'], t.env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^scorejob: there is no model churn in schema scores_alt on \S+ \(its models: churn "v2" it's, customer-value\)\n$/);
  });

  it('exit 75 at once while a run of the model holds its lock, and nothing is done', async () => {
    const held = await holdRunLock(t, schema, 'customer-value');
    try {
      const started = performance.now();
      const r = await runCliInProcess(['--schema', schema, 'model', 'retire', 'customer-value', '--confirm', 'customer-value'], t.env);
      expect(r.code).toBe(75);
      expect(r.stderr).toMatch(/holds the lock/);
      expect(performance.now() - started).toBeLessThan(8000);
    } finally {
      await held.release();
    }
    expect(await rowsOf('customer-value')).toBe(200);
  });
});
