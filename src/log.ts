import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/**
 * The root logger: JSON lines on stdout (what cron and log shippers read), or pino-pretty for people.
 * Writes are synchronous so that a line logged just before `process.exit` is never lost.
 */
export function createLogger(opts: { level: string; pretty: boolean; destination?: 1 | 2 }): Logger {
  // stdout by default; stderr where stdout is reserved for a document (`--json`).
  const dest = opts.destination ?? 1;
  const options = {
    level: opts.level,
    base: { pid: process.pid },
    // Belt and braces: connection secrets never reach a line even if someone logs a config object.
    redact: { paths: ['password', '*.password', 'db.password', 'connectionString', '*.connectionString'], censor: '[redacted]' },
  };
  if (opts.pretty) {
    // Messages are written to stand alone; the fields stay in the JSON form for machines.
    return pino(
      options,
      pretty({
        destination: dest,
        sync: true,
        colorize: Boolean((dest === 1 ? process.stdout : process.stderr).isTTY),
        ignore: 'pid,hostname',
        hideObject: true,
      }),
    );
  }
  return pino(options, pino.destination({ dest, sync: true }));
}
