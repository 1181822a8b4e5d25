import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { waitUntil } from './waitUntil.js';

/**
 * A real Prometheus Pushgateway (Debian's `prometheus-pushgateway`) on 127.0.0.1 and a free port, and
 * `promtool` (Debian's `prometheus`) to check what it serves. Installed with apt-get when missing (as
 * root; otherwise the reason is returned and the test is skipped, saying so).
 */
const gatewayBin = '/usr/bin/prometheus-pushgateway';
const promtoolBin = '/usr/bin/promtool';

export function ensurePushgateway(): string | undefined {
  if (existsSync(gatewayBin) && existsSync(promtoolBin)) return undefined;
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'prometheus-pushgateway and promtool are not installed, and apt-get needs root';
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'prometheus-pushgateway', 'prometheus'], {
      env,
      encoding: 'utf8',
    });
  let r = install();
  if (r.status !== 0) {
    spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update'], { env, encoding: 'utf8' });
    r = install();
  }
  if (r.error || r.status !== 0 || !existsSync(gatewayBin) || !existsSync(promtoolBin))
    return `cannot install prometheus-pushgateway/prometheus: ${r.error?.message ?? (r.stderr || r.stdout).trim().split('\n').at(-1)}`;
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Pushgateway {
  url: string;
  /** The text of its /metrics. */
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts a Pushgateway on 127.0.0.1 (never another address), without persistence; stop() ends it. */
export async function startPushgateway(): Promise<Pushgateway> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(gatewayBin, [`--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
  await waitUntil(
    'the Pushgateway answers',
    async () =>
      child.exitCode !== null
        ? Promise.reject(new Error(`pushgateway exited ${child.exitCode}`))
        : fetch(`${url}/-/ready`).then(
            (r) => r.ok,
            () => false,
          ),
    30_000,
    100,
  );
  return {
    url,
    metrics: async () => (await fetch(`${url}/metrics`)).text(),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

/** `promtool check metrics` on a text: its exit code and output (lint problems are on stdout/stderr). */
export function promtoolCheck(text: string): { code: number | null; output: string } {
  const r = spawnSync(promtoolBin, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}
