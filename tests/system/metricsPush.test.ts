import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCli, startCli, waitForLog } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { ensurePushgateway, promtoolCheck, startPushgateway, type Pushgateway } from '../helpers/pushgateway.js';
import { modelCopy } from '../helpers/run.js';

const unavailable = ensurePushgateway();
if (unavailable) console.warn(`SKIPPED tests/system/metricsPush.test.ts: ${unavailable}`);

/**
 * `--metrics-push URL` against a real Pushgateway: every outcome (success, a gate's failure, a refusal)
 * replaces the group job="scorejob", model=NAME, so a stale success never hides a later failure; what
 * the gateway serves passes `promtool check metrics`.
 */
describe.skipIf(unavailable !== undefined)('metrics pushed to a Pushgateway', () => {
  let t: TestDatabase;
  let gw: Pushgateway;
  let nanModel: string;
  beforeAll(async () => {
    [t, gw] = await Promise.all([createTestDatabase(), startPushgateway()]);
    await seedCustomers(t.pool, { customers: 1000, seed: 4 });
    nanModel = await modelCopy();
    const weights = join(nanModel, 'weights.bin');
    const bytes = await readFile(weights);
    bytes.writeFloatLE(Number.NaN, bytes.length - 4);
    await writeFile(weights, bytes);
  }, 60_000);
  afterAll(async () => {
    await gw?.stop();
    await t?.drop();
  });

  // The gateway adds instance="" to a group pushed without one.
  const group = { job: 'scorejob', model: 'customer-value', instance: '' };
  const scraped = async () => {
    const text = await gw.metrics();
    const check = promtoolCheck(text);
    expect(check.code, check.output).toBe(0);
    return parsePrometheus(text);
  };

  it('a success, then a gate failure, then a refusal: each replaces the group; promtool accepts the lot', async () => {
    const ok = await runCli(['--no-pretty', 'run', '--metrics-push', gw.url], t.env);
    expect(ok.code, ok.stderr).toBe(0);
    let m = await scraped();
    expect(m.get('scorejob_last_run_success', group)).toBe(1);
    expect(m.get('scorejob_last_run_rows_scored', group)).toBe(1000);
    const okRun = m.get('scorejob_last_run_id', group);
    const lastSuccess = m.get('scorejob_last_success_timestamp_seconds', group);
    expect(lastSuccess).toBeGreaterThan(Date.now() / 1000 - 120);

    const gated = await runCli(['--no-pretty', 'run', '--model', nanModel, '--metrics-push', gw.url], t.env);
    expect(gated.code).toBe(1);
    m = await scraped();
    expect(m.get('scorejob_last_run_success', group)).toBe(0);
    expect(m.get('scorejob_last_run_failure', { ...group, kind: 'gate' })).toBe(1);
    expect(m.get('scorejob_last_run_id', group)).toBe(Number(okRun) + 1);
    expect(m.get('scorejob_last_success_timestamp_seconds', group)).toBe(lastSuccess);

    // Refused before it started (exit 2): no run id; a merge (POST) would have kept the failed run's id and rows.
    const refused = await runCli(['--no-pretty', 'run', '--chunk-size', 'lots', '--metrics-push', gw.url], t.env);
    expect(refused.code).toBe(2);
    m = await scraped();
    expect(m.get('scorejob_last_run_status', { ...group, status: 'refused' })).toBe(1);
    expect(m.get('scorejob_last_run_id', group)).toBeUndefined();
    expect(m.get('scorejob_last_success_timestamp_seconds', group)).toBe(lastSuccess);
  }, 120_000);

  it('refuses a URL that is not one (exit 2, naming the flag), before anything is written', async () => {
    const r = await runCli(['run', '--metrics-push', 'pushgateway:9091'], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^scorejob: --metrics-push: "pushgateway:" is not http: or https:/);
  });

  it('a Pushgateway that is down does not fail the run: a warning names it', async () => {
    const down = 'http://127.0.0.1:9';
    // With basic-auth credentials in the URL: they never reach a log line.
    const r = await runCli(['--no-pretty', 'run', '--metrics-push', 'http://pusher:s3cret@127.0.0.1:9'], t.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.logs.find((l) => l.metrics_push === down)?.msg).toMatch(/^could not push the metrics to the Pushgateway http:\/\/127\.0\.0\.1:9: /);
    expect(r.stdout + r.stderr).not.toContain('s3cret');
    // `schedule` logs the run options it passes on: without the password.
    const sched = startCli(['--no-pretty', 'schedule', '--cron', '0 0 1 1 *', '--metrics-push', 'http://pusher:s3cret@127.0.0.1:9'], t.env);
    const started = await waitForLog(sched, (l) => String(l.msg).startsWith('scheduler started'));
    sched.kill('SIGTERM');
    const s = await sched.result;
    expect(s.code).toBe(0);
    expect(started.run_args).toContain('http://…@127.0.0.1:9');
    expect(s.stdout + s.stderr).not.toContain('s3cret');
  }, 60_000);
});
