import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { childEnv, repoRoot, startCli, waitForLog, type CliResult } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdRunLock } from '../helpers/hold.js';
import { parsePrometheus } from '../helpers/prometheus.js';

async function snapshot(t: TestDatabase): Promise<{ runs: string[]; scores: Map<string, number> }> {
  const { rows } = await t.pool.query<{ k: string; s: number; r: string }>('SELECT customer_id::text k, score s, run_id::text r FROM scoring.customer_scores');
  return { runs: [...new Set(rows.map((x) => x.r))], scores: new Map(rows.map((x) => [x.k, x.s])) };
}

async function runRow(t: TestDatabase, runId: string): Promise<Record<string, any>> {
  const { rows } = await t.pool.query('SELECT *, extract(epoch FROM finished_at)::float8 AS finished_epoch FROM scoring.score_runs WHERE run_id = $1', [runId]);
  return rows[0] as Record<string, any>;
}

function runIdOf(r: CliResult): string {
  return r.logs.find((l) => typeof l.run_id === 'string')?.run_id as string;
}

async function metricsOf(file: string) {
  return parsePrometheus(await readFile(file, 'utf8'));
}

describe('publish gates, publish --force and the metrics file', () => {
  let t: TestDatabase;
  let dir: string;
  let firstRun: string;
  let gated: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    dir = await mkdtemp(join(tmpdir(), 'sj-obs-'));
    await seedCustomers(t.pool, { customers: 6000, seed: 41 });
    // A few customers every run rejects (tenure_months has no fill): 0.2%, under the reject gate.
    await t.pool.query('UPDATE customers SET tenure_months = NULL WHERE customer_id % 500 = 0');
    const first = await runCliInProcess(['run', '--chunk-size', '2000'], t.env);
    expect(first.code).toBe(0);
    firstRun = runIdOf(first);
    const summary = first.logs.at(-1) as Record<string, unknown>;
    expect(summary).toMatchObject({ status: 'succeeded', psi: null, psi_baseline_run_id: null });
  });
  afterAll(async () => t.drop());

  it('a --max-psi breach on changed data fails with error kind gate and leaves customer_scores unchanged; the metrics file says so', async () => {
    const before = await snapshot(t);
    await t.pool.query('UPDATE customers SET days_since_last_order = days_since_last_order + 300 WHERE customer_id % 2 = 0');
    const metrics = join(dir, 'gate.prom');
    const r = await runCliInProcess(['run', '--chunk-size', '2000', '--max-psi', '0.0001', '--metrics-file', metrics], t.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the scores drifted from run \d+'s: PSI \d\.\d{4}, over the limit of 0\.0001 \(--max-psi\)/);
    expect(r.stderr).toMatch(/scorejob publish \d+ --force/);
    gated = runIdOf(r);
    expect(await snapshot(t)).toEqual(before);
    const row = await runRow(t, gated);
    expect(row).toMatchObject({ status: 'failed', error_kind: 'gate', published_at: null });
    // Statistics are kept on a gated run, for inspection.
    expect(row.stats.drift.baseline_run_id).toBe(firstRun);
    expect(row.stats.drift.psi).toBeGreaterThan(0.0001);
    expect(row.stats.scores.count).toBe(Number(row.rows_scored));

    const m = await metricsOf(metrics);
    expect(m.get('scorejob_last_run_success')).toBe(0);
    expect(m.get('scorejob_last_run_status', { status: 'failed' })).toBe(1);
    expect(m.get('scorejob_last_run_failure', { kind: 'gate' })).toBe(1);
    expect(m.get('scorejob_last_run_published')).toBe(0);
    expect(m.get('scorejob_last_run_id')).toBe(Number(gated));
    expect(m.get('scorejob_last_run_rows_scored')).toBe(Number(row.rows_scored));
    expect(m.get('scorejob_last_run_psi')).toBeCloseTo(row.stats.drift.psi, 12);
    // The last success is kept on failure: the first run's, from the ledger.
    expect(m.get('scorejob_last_success_timestamp_seconds')).toBeCloseTo((await runRow(t, firstRun)).finished_epoch, 2);
  });

  it('publish without --force is refused (exit 2); publish --force publishes the gated run, records it on the run, and writes metrics', async () => {
    const before = await snapshot(t);
    const refused = await runCliInProcess(['publish', gated], t.env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`publish it with \`scorejob publish ${gated} --force --reason "<what you checked>"\``));
    expect(await snapshot(t)).toEqual(before);

    const metrics = join(dir, 'gate.prom');
    const forced = await runCliInProcess(['publish', gated, '--force', '--reason', 'drift expected: new price list', '--metrics-file', metrics], t.env);
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    expect(forced.logs.some((l) => l.forced_publish === true && l.level === 40 && /published by force/.test(String(l.msg)))).toBe(true);
    const after = await snapshot(t);
    expect(after.runs).toEqual([gated]);
    expect(after.scores.size).toBe(before.scores.size);
    const row = await runRow(t, gated);
    expect(row).toMatchObject({ status: 'succeeded', error: null });
    expect(row.published_at).not.toBeNull();
    expect(row.stats.forced_publish.overridden_error).toMatch(/--max-psi/);
    expect(row.stats.scores.count).toBe(Number(row.rows_scored)); // the statistics are kept
    // Who is missing from customer_scores, and where they are listed.
    const warning = String(forced.logs.find((l) => l.forced_publish === true && l.level === 40)?.msg);
    const listed = (await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.customer_score_rejects WHERE run_id = $1', [gated])).rows[0]?.n;
    expect(listed).toBe(Number(row.rows_rejected));
    expect(listed).toBeGreaterThan(0);
    expect(warning).toContain(`${listed} customer(s) the run could not score (null_without_fill in `);
    expect(warning).toContain(`are listed in scoring.customer_score_rejects (readers) and scoring.score_rejects WHERE run_id = ${gated}`);
    const m = await metricsOf(metrics);
    expect(m.get('scorejob_last_run_success')).toBe(1);
    expect(m.get('scorejob_last_run_forced_publish')).toBe(1);
    expect(m.get('scorejob_last_success_timestamp_seconds')).toBeCloseTo(row.finished_epoch, 2);

    const again = await runCliInProcess(['publish', gated, '--force', '--reason', 'again'], t.env);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already published/);
    const show = await runCliInProcess(['runs', 'show', gated], t.env);
    expect(show.stdout).toMatch(/Published by force on .* over: the scores drifted.*; reason: drift expected: new price list\n/);
  });

  it('publish --force refuses a run no gate stopped and an unknown run (exit 2), and exits 75 while another holds the run lock', async () => {
    const ok = await runCliInProcess(['publish', firstRun, '--force', '--reason', 'r'], t.env);
    expect(ok.code).toBe(2);
    expect((await runCliInProcess(['publish', '999999', '--force', '--reason', 'r'], t.env)).stderr).toMatch(/there is no run 999999/);
    const holder = await holdRunLock(t);
    try {
      const locked = await runCliInProcess(['publish', gated, '--force', '--reason', 'r'], t.env);
      expect(locked.code).toBe(75);
    } finally {
      await holder.release();
    }
  });

  it('an interrupted run writes the metrics file too, is refused by publish --force, and once resumed its statistics cover every chunk', async () => {
    const metrics = join(dir, 'interrupted.prom');
    const child = startCli(['run', '--chunk-size', '20', '--metrics-file', metrics], t.env);
    const started = await waitForLog(child, (l) => /started/.test(String(l.msg)));
    await waitForLog(child, (l) => typeof l.chunks_done === 'number' && l.chunks_done >= 3);
    child.kill('SIGTERM');
    expect((await child.result).code).toBe(143);
    const id = started.run_id as string;
    const m = await metricsOf(metrics);
    expect(m.get('scorejob_last_run_status', { status: 'interrupted' })).toBe(1);
    expect(m.get('scorejob_last_run_success')).toBe(0);
    expect(m.get('scorejob_last_run_rows_scored')).toBeGreaterThan(0);
    expect(m.get('scorejob_last_success_timestamp_seconds')).toBeCloseTo((await runRow(t, gated)).finished_epoch, 2);

    const refused = await runCliInProcess(['publish', id, '--force', '--reason', 'r'], t.env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`run ${id} is interrupted; only a run stopped by a publish gate .*scorejob resume ${id}`));

    const resumed = await runCliInProcess(['resume', id, '--metrics-file', metrics], t.env);
    expect(resumed.code).toBe(0);
    const row = await runRow(t, id);
    expect(row.stats.scores.count).toBe(Number(row.rows_scored));
    expect(row.stats.features.rows).toBe(6000);
    // Same data and model as the force-published run: the same histogram, whatever the interruption.
    const other = await runRow(t, gated);
    expect(row.stats.scores.histogram).toEqual(other.stats.scores.histogram);
    expect(row.stats.drift).toMatchObject({ psi: 0, baseline_run_id: gated });
    expect((resumed.logs.at(-1) as Record<string, unknown>).psi).toBe(0);
    expect((await metricsOf(metrics)).get('scorejob_last_run_success')).toBe(1);
  });

  it('runs show draws the score histogram beside the previous published run, with PSI and the feature table', async () => {
    const show = await runCliInProcess(['runs', 'show', gated], t.env);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(new RegExp(`Drift \\(PSI over 10 bins\\)  \\d\\.\\d{4} \\(\\w[\\w ]*\\) against run ${firstRun}`));
    expect(show.stdout).toContain(`Score histogram (this run │ previous published run ${firstRun}):`);
    const bars = show.stdout.split('\n').filter((l) => /^ {2}\d\.\d\d–\d\.\d\d {2}.*% {2}│ .*%$/.test(l));
    expect(bars).toHaveLength(20);
    expect(show.stdout).toMatch(/Features \(6,000 rows read; previous published run \d+ in brackets\):/);
    expect(show.stdout).toMatch(/days_since_last_order\s+standardize\s+\d+\.\d\d% \(\d+\.\d\d%\)/);
    const json = JSON.parse((await runCliInProcess(['runs', 'show', gated, '--json'], t.env)).stdout) as Record<string, any>;
    expect(json.drift.baseline_run_id).toBe(firstRun);
    expect(json.features.features).toHaveLength(15);
  });

  it('a refusal (exit 2) writes the metrics file too: status refused, kind config, the last success kept', async () => {
    const metrics = join(dir, 'refused.prom');
    const ok = await runCliInProcess(['run', '--chunk-size', '3000', '--metrics-file', metrics], t.env);
    expect(ok.code).toBe(0);
    const lastSuccess = (await metricsOf(metrics)).get('scorejob_last_success_timestamp_seconds', { model: 'customer-value' });
    expect(lastSuccess).toBeGreaterThan(0);
    // A column the model needs changes type: the run is refused before it starts.
    await t.pool.query('ALTER TABLE customers ALTER COLUMN tenure_months TYPE text');
    try {
      const refused = await runCliInProcess(['run', '--metrics-file', metrics], t.env);
      expect(refused.code, refused.stderr).toBe(2);
      const m = await metricsOf(metrics);
      const labels = { model: 'customer-value' };
      expect(m.get('scorejob_last_run_success', labels)).toBe(0);
      expect(m.get('scorejob_last_run_status', { ...labels, status: 'refused' })).toBe(1);
      expect(m.get('scorejob_last_run_status', { ...labels, status: 'succeeded' })).toBe(0);
      expect(m.get('scorejob_last_run_failure', { ...labels, kind: 'config' })).toBe(1);
      expect(m.get('scorejob_last_run_id', labels)).toBeUndefined();
      expect(m.get('scorejob_last_success_timestamp_seconds', labels)).toBe(lastSuccess);
    } finally {
      await t.pool.query('ALTER TABLE customers ALTER COLUMN tenure_months TYPE integer USING tenure_months::integer');
    }
  });

  it('metrics and progress options are checked before anything is written (exit 2)', async () => {
    const count = async () => (await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM scoring.score_runs')).rows[0]?.n;
    const before = await count();
    expect((await runCliInProcess(['run', '--metrics-file', '/nonexistent-dir/x.prom'], t.env)).stderr).toMatch(/--metrics-file: .*does not exist/);
    const bad = await runCliInProcess(['run', '--max-psi', 'much'], t.env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--max-psi: "much" is not a number/);
    expect((await runCliInProcess(['run', '--progress-interval', '-1'], { ...t.env })).code).toBe(2);
    expect((await runCliInProcess(['run'], { ...t.env, SCOREJOB_MAX_PSI: 'x' })).stderr).toMatch(/SCOREJOB_MAX_PSI/);
    expect(await count()).toBe(before);
  });
});

describe('progress', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 6000, seed: 43 });
  });
  afterAll(async () => t.drop());

  it('on a pseudo-terminal: a live line on stderr with customers, rate, chunks, elapsed and ETA, cleared at the end', async (ctx) => {
    if (!existsSync('/usr/bin/script')) {
      console.warn('skipped: util-linux `script` is not installed (no pseudo-terminal)');
      ctx.skip();
    }
    const cmd = `${process.execPath} ${join(repoRoot, 'bin/scorejob')} run --chunk-size 200`;
    const inPty = (command: string) =>
      new Promise<{ code: number | null; text: string }>((resolve, reject) => {
        const child = spawn('script', ['-qfec', command, '/dev/null'], {
          cwd: repoRoot,
          env: childEnv({ ...t.env, TERM: 'xterm' }),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let text = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (text += d));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, text }));
      });
    const out = await inPty(cmd);
    expect(out.code).toBe(0);
    const lines = out.text.split('\r\x1b[2K').slice(1);
    const drawn = lines.filter((l) => l.startsWith('scoring '));
    expect(drawn.length).toBeGreaterThan(0);
    expect(drawn.at(-1)).toMatch(/scoring [█░]{20} +\d+\.\d% +[\d,]+\/6,000 customers +[\d,]+ rows\/s +chunks \d+\/30 +elapsed \d+:\d\d +ETA (\d+:\d\d|—)/);
    // The last erase is the clearing one: nothing drawn after it, and the summary follows.
    expect(lines.at(-1)?.startsWith('scoring ')).toBe(false);
    expect(lines.at(-1)).toMatch(/run \d+ succeeded/);
    // It is stderr's: with stderr sent away, the terminal shows the log lines only.
    const quiet = await inPty(`${cmd} 2>/dev/null`);
    expect(quiet.code).toBe(0);
    expect(quiet.text).toMatch(/run \d+ succeeded/);
    expect(quiet.text).not.toContain('scoring ');
  });

  it('in a pipe: no live line, no bar; progress log lines every --progress-interval seconds instead, per-chunk lines still at info', async () => {
    const r = await runCliInProcess(['run', '--chunk-size', '20', '--progress-interval', '0.1'], t.env);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toMatch(/[\r█░]/);
    const progress = r.logs.filter((l) => l.progress === true);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[0]).toMatchObject({ level: 30, customers_total: 6000, chunks_total: 300 });
    expect(progress[0]?.msg).toMatch(/^progress: [\d,]+ of 6,000 customers \(\d+\.\d%\), \d+ of 300 chunks, [\d,]+ rows\/s, elapsed \d+:\d\d, ETA /);
    expect(r.logs.filter((l) => /^chunk \d+ done/.test(String(l.msg)) && l.level === 30)).toHaveLength(300);
  });
});
