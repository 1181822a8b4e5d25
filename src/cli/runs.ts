import type { Command } from 'commander';
import { defaults, parseChoice, parseIntFlag } from '../config.js';
import { formatRunDetail, formatRunList } from '../report/formatRuns.js';
import { writeHtmlReport } from '../report/htmlReport.js';
import { listRuns, showRun } from '../report/runsReport.js';
import { withSession } from '../db/session.js';
import { featureReports } from '../features/reports.js';
import { action } from './action.js';

const statuses = ['running', 'succeeded', 'failed', 'interrupted'] as const;

/** `scorejob runs` and `scorejob runs show <run-id>`: read the ledger. */
export function registerRuns(program: Command): void {
  const runs = program
    .command('runs')
    .description('list recent runs; `runs show <run-id>` for one run in detail')
    .option('--limit <n>', 'how many runs', String(defaults.runsLimit))
    .option('--status <status>', 'only runs with this status: running, succeeded, failed, interrupted')
    .option('--model-name <name>', "only runs of this model (the manifest's name)")
    .option('--json', 'machine-readable output', false)
    .action(
      action(
        async (ctx, cmd: Command) => {
          const flags = cmd.opts<{ limit: string; status?: string; modelName?: string; json: boolean }>();
          const limit = parseIntFlag(flags.limit, '--limit', 1, 10_000);
          const status = flags.status === undefined ? undefined : parseChoice(flags.status, '--status', statuses);
          await withSession(ctx.config, {}, async ({ client }) => {
            const items = await listRuns(client, ctx.config.schema, { limit, status, modelName: flags.modelName });
            process.stdout.write(flags.json ? JSON.stringify(items, null, 2) + '\n' : formatRunList(items));
          });
        },
        { quiet: true },
      ),
    );
  runs
    .command('show')
    .description('one run in detail: chunks, rejects by reason, score statistics, the previous published run')
    .argument('<run-id>', 'the run')
    .option('--json', 'machine-readable output', false)
    .option('--html <file>', 'also write a self-contained HTML report (histogram against the previous run, feature table) to this file')
    .action(
      action(
        async (ctx, runId: string, cmd: Command) => {
          const flags = cmd.opts<{ json: boolean; html?: string }>();
          await withSession(ctx.config, {}, async ({ client }) => {
            const detail = await showRun(client, ctx.config.schema, runId, featureReports);
            if (flags.html !== undefined) await writeHtmlReport(flags.html, detail, featureReports);
            // `runs show <id> --json`: commander hands --json to `runs`, which declares it too.
            const json = flags.json || runs.opts<{ json: boolean }>().json;
            process.stdout.write(json ? JSON.stringify(detail, null, 2) + '\n' : formatRunDetail(detail, featureReports));
          });
        },
        { quiet: true },
      ),
    );
}
