/**
 * `npm run docs:screenshot`: makes docs/images/report.png, the HTML report of docs/observability.md.
 * Needs DATABASE_URL naming a database of its own (it seeds `customers` there) and Debian's chromium.
 * Two runs of the synthetic customers (the second over a re-seeded table, so the report has a previous run
 * to compare with and some drift), then `scorejob runs show <id> --html`, then a headless screenshot.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const out = join(repoRoot, 'docs/images/report.png');

function scorejob(...args: string[]): string {
  return execFileSync(process.execPath, [join(repoRoot, 'bin/scorejob'), '--no-pretty', '--log-level', 'warn', ...args], { encoding: 'utf8' });
}

if (!process.env.DATABASE_URL) {
  process.stderr.write('screenshot: set DATABASE_URL to a database of its own (it seeds a customers table there)\n');
  process.exit(2);
}
const tmp = mkdtempSync(join(tmpdir(), 'sj-shot-'));
try {
  scorejob('migrate');
  scorejob('seed', '--customers', '50000', '--seed', '1', '--replace');
  scorejob('run');
  scorejob('seed', '--customers', '50000', '--seed', '2', '--null-fraction', '0.05', '--replace');
  scorejob('run');
  const runs = JSON.parse(scorejob('runs', '--json', '--limit', '1')) as { run_id: string }[] | { runs: { run_id: string }[] };
  const runId = (Array.isArray(runs) ? runs : runs.runs)[0]!.run_id;
  const html = join(tmp, 'report.html');
  scorejob('runs', 'show', String(runId), '--html', html);
  const flags = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
    '--hide-scrollbars',
  ];
  execFileSync('chromium', [...flags, `--user-data-dir=${join(tmp, 'profile')}`, `--screenshot=${out}`, '--window-size=1200,1600', `file://${html}`], {
    stdio: 'ignore',
  });
  process.stdout.write(`wrote ${out} (${Math.round(statSync(out).size / 1024)} KB), the report of run ${runId}\n`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
