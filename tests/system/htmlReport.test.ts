import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const run = promisify(execFile);

function which(name: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Debian's chromium: found, or installed with apt when we are root; otherwise the reason it is not there. */
async function findChromium(): Promise<{ bin: string } | { reason: string }> {
  const found = ['chromium', 'chromium-browser', 'google-chrome'].map(which).find((b) => b !== undefined);
  if (found) return { bin: found };
  if (process.getuid?.() !== 0 || !which('apt-get'))
    return { reason: 'chromium is not installed and apt-get cannot install it here (not root, or no apt-get)' };
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update'], { env, timeout: 300_000 });
    await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'chromium'], { env, timeout: 600_000 });
  } catch (err) {
    return { reason: `apt-get install chromium failed: ${String((err as Error).message).split('\n')[0]}` };
  }
  const bin = which('chromium');
  return bin ? { bin } : { reason: 'apt-get installed chromium, but there is no chromium binary on the PATH' };
}

/** Width, height and the inflated pixel data of a PNG (no decoder needed for what the test asks). */
function readPng(buf: Buffer): { width: number; height: number; pixels: Buffer } {
  expect(buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  for (let at = 8; at < buf.length;) {
    const len = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    const data = buf.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
    } else if (type === 'IDAT') idat.push(data);
    at += 12 + len;
  }
  return { width, height, pixels: inflateSync(Buffer.concat(idat)) };
}

const chromiumFlags = (dir: string) => [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  `--user-data-dir=${dir}`,
];

describe('runs show --html', () => {
  let t: TestDatabase;
  let dir: string;
  let runId: string;
  let html: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    dir = await mkdtemp(join(tmpdir(), 'sj-html-'));
    await seedCustomers(t.pool, { customers: 3000, seed: 51 });
    expect((await runCli(['run', '--chunk-size', '1000'], t.env)).code).toBe(0);
    await t.pool.query('UPDATE customers SET days_since_last_order = days_since_last_order + 300 WHERE customer_id % 2 = 0');
    const second = await runCli(['run', '--chunk-size', '1000'], t.env);
    expect(second.code).toBe(0);
    runId = second.logs.find((l) => typeof l.run_id === 'string')?.run_id as string;
    html = join(dir, `run-${runId}.html`);
    const show = await runCli(['runs', 'show', runId, '--html', html], t.env);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`Run ${runId}: succeeded`);
  });
  afterAll(async () => t.drop());

  it('writes one self-contained page: inline CSS and SVG, no script, nothing fetched from elsewhere', async () => {
    const page = await readFile(html, 'utf8');
    expect(page.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(page).toContain('<style>');
    for (const forbidden of ['http://', 'https://', '<script', ' src=', '<link', 'url(', '@import']) expect(page, forbidden).not.toContain(forbidden);
    expect(page).toContain(`<title>scorejob run ${runId}: succeeded</title>`);
  });

  it('headless Chromium renders it: the facts, the histogram beside the previous run, the feature table', { timeout: 900_000 }, async (ctx) => {
    const chromium = await findChromium();
    if ('reason' in chromium) {
      console.warn(`skipped: ${chromium.reason}`);
      ctx.skip();
      return;
    }
    const dom = (
      await run(chromium.bin, [...chromiumFlags(await mkdtemp(join(tmpdir(), 'sj-chromium-'))), '--dump-dom', `file://${html}`], {
        timeout: 120_000,
        maxBuffer: 20_000_000,
      })
    ).stdout;
    expect(dom).toContain('<table id="facts">');
    expect(dom).toMatch(/<svg id="histogram"/);
    expect(dom.match(/<rect class="bar current"/g)).toHaveLength(20);
    expect(dom.match(/<rect class="bar previous"/g)).toHaveLength(20);
    expect(dom).toMatch(/drift \(PSI\)<\/th><td><span class="\w+">\d\.\d{4} — /);
    const features = /<table id="features">([\s\S]*?)<\/table>/.exec(dom)?.[1] ?? '';
    expect(features.match(/<tr[ >]/g)).toHaveLength(16); // header + the model's 15 features
    // The data change before this run (days_since_last_order + 300 for half the customers) is highlighted and listed.
    expect(features).toMatch(/<tr class="changed"[^>]*><td>days_since_last_order<\/td>/);
    expect(dom).toMatch(/<ul id="changes">[\s\S]*days_since_last_order: outside the training range/);
    expect(dom).toMatch(/<div id="next" class="ok"><strong>Next step\.<\/strong> Nothing to do/);
    expect(dom).toContain('<table id="scores">');

    const shot = join(dir, 'report.png');
    await run(
      chromium.bin,
      [...chromiumFlags(await mkdtemp(join(tmpdir(), 'sj-chromium-'))), `--screenshot=${shot}`, '--window-size=1200,1600', `file://${html}`],
      { timeout: 120_000 },
    );
    expect(existsSync(shot)).toBe(true);
    expect((await stat(shot)).size).toBeGreaterThan(20_000);
    const png = readPng(await readFile(shot));
    expect({ width: png.width, height: png.height }).toEqual({ width: 1200, height: 1600 });
    // Not a blank page: many distinct byte values in the pixel rows.
    expect(new Set(png.pixels).size).toBeGreaterThan(50);
  });
});
