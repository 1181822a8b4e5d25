import { availableParallelism } from 'node:os';

// Apart from sharedRun.ts, which loads the chunk loop and the model backend: the CLI's option
// definitions read these for every command, `scorejob runs` included.

/** A claim's lease without renewal, seconds: long against a renewal every third of it, short against a dead worker's chunk waiting. */
export const defaultLeaseS = 30;

/**
 * `--workers auto`: one worker per core, less one when the database server shares the host (measured on
 * 2 cores: a second worker next to the server ran no faster, docs/operations.md "Scaling out"). At least one.
 */
export function autoWorkers(dbHost: string | undefined): number {
  const cores = availableParallelism();
  const local = dbHost === undefined || dbHost === '' || dbHost === 'localhost' || dbHost.startsWith('127.') || dbHost === '::1' || dbHost.startsWith('/');
  return Math.max(1, local ? cores - 1 : cores);
}
