import { spawn } from 'node:child_process';
import type { Logger } from '../log.js';
import type { PublishedEvent, RetiredEvent } from '../ledger/publications.js';

/**
 * `--on-publish-command CMD`: a hook for hosts that prefer one to LISTEN. Run through the shell after
 * the publish (or rollback, or retire) committed, so it can read the new scores; the event goes in the
 * environment (SCOREJOB_RUN_ID, empty for a retire, SCOREJOB_MODEL_NAME, SCOREJOB_SCHEMA, SCOREJOB_PUBLISH_KIND, and the whole payload
 * as JSON in SCOREJOB_PUBLISHED_EVENT). Its failure is logged, never thrown: the scores are published.
 */
export async function runOnPublishCommand(command: string | undefined, event: PublishedEvent | RetiredEvent, log: Logger): Promise<void> {
  if (command === undefined || command.trim() === '') return;
  const env = {
    ...process.env,
    SCOREJOB_RUN_ID: event.run_id ?? '',
    SCOREJOB_PREVIOUS_RUN_ID: event.previous_run_id ?? '',
    SCOREJOB_MODEL_NAME: event.model_name,
    SCOREJOB_SCHEMA: event.schema,
    SCOREJOB_PUBLISH_KIND: event.kind,
    SCOREJOB_PUBLISHED_EVENT: JSON.stringify(event),
  };
  const started = performance.now();
  const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    // stdout and stderr go where scorejob's go; nothing is read from the child.
    const child = spawn(command, { shell: true, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', (error) => resolve({ code: null, signal: null, error }));
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const ms = Math.round(performance.now() - started);
  if (outcome.code === 0) {
    log.info({ on_publish_command: command, ms }, `--on-publish-command finished in ${ms} ms`);
    return;
  }
  const why = outcome.error ? outcome.error.message : outcome.signal ? `killed by ${outcome.signal}` : `exit code ${outcome.code}`;
  log.warn(
    { on_publish_command: command, ms, exit_code: outcome.code, signal: outcome.signal },
    `--on-publish-command failed (${why}); ${event.run_id === null ? `model ${event.model_name} is retired` : `run ${event.run_id} is published`} all the same`,
  );
}
