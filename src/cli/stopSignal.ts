import type { StopSignal } from '../chunks/chunkLoop.js';
import { signalExitCode } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * SIGINT/SIGTERM: the first asks the run to stop after the chunk in flight (it is marked interrupted
 * and exits 130/143); a second exits at once (the open chunk transaction dies with the connection).
 */
export async function withStopSignal<T>(log: Logger, fn: (stop: StopSignal) => Promise<T>): Promise<T> {
  const stop: StopSignal = { requested: undefined };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.requested) {
      log.fatal({ signal }, `${signal} again: stopping at once; the chunk in flight is rolled back`);
      process.exit(signalExitCode(signal));
    }
    stop.requested = signal;
    log.warn({ signal }, `${signal}: finishing the chunk in flight, then stopping (send it again to stop at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn(stop);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
