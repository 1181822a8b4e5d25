import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { PlannedChunk, RunParams } from '../ledger/types.js';
import type { ChunkLoopDeps, ChunkSource } from '../chunks/chunkLoop.js';
import { chunkStages, runClaimed, thisWorker } from './claimLoop.js';
import { defaultLeaseS } from './workerCount.js';
import type { Stage } from '../observe/timings.js';

const bin = fileURLToPath(new URL('../../bin/scorejob', import.meta.url));

/**
 * The coordinator's part of a shared run (one started with `--workers`): it voids the claims of an
 * earlier attempt, starts `workers - 1` local worker processes (`scorejob work --run ID`: each its own
 * connections and model backend), scores chunks itself by claim like any worker, and returns once no
 * chunk is pending (remote workers may have done some) or it was stopped. Workers' failures reach it
 * through the ledger: a chunk marked failed fails the run here.
 */
export async function runShared(loop: Omit<ChunkLoopDeps, 'recordFailure'>, run: { config: Config; params: RunParams; modelDir: string }): Promise<boolean> {
  const claims = loop.ledger.claims;
  await claims.reset(loop.pool, loop.runId);
  const children = spawnWorkers((run.params.workers ?? 1) - 1, loop.runId, run, loop.outageBudgetMs);
  if (children.length > 0)
    loop.log.info(
      { workers: children.length + 1, worker_pids: children.map((c) => c.pid) },
      `run ${loop.runId}: ${children.length} local worker process(es) started beside this one`,
    );
  // A stop request reaches the local workers too (once: a second signal stops a worker at once, its
  // chunk rolled back): each finishes its chunks in flight and gives its other claims back.
  const told = new Set<ChildProcess>();
  const forward = setInterval(() => {
    if (!loop.stop.requested) return;
    for (const c of children) {
      if (c.exitCode !== null || c.signalCode !== null || told.has(c)) continue;
      told.add(c);
      c.kill(loop.stop.requested);
    }
  }, 200);
  forward.unref();
  try {
    const outcome = await runClaimed({
      ...loop,
      claims,
      schema: run.config.schema,
      worker: thisWorker(),
      leaseMs: (run.params.chunkLeaseS ?? defaultLeaseS) * 1000,
      role: 'coordinator',
    });
    if (outcome === 'done') await addWorkerTimings(loop);
    return outcome === 'done';
  } finally {
    clearInterval(forward);
    // The workers end on their own once no chunk is pending; after a failure they see the failed chunk and stop.
    await Promise.all(children.map((c) => exited(c, 30_000, loop.log)));
  }
}

/**
 * The run's stage timings are the whole run's, as in an unshared run: this process measured its own chunks;
 * the other workers' come from their chunks' ledger rows (`stats.timings_ms`, written with each chunk).
 */
async function addWorkerTimings(loop: Omit<ChunkLoopDeps, 'recordFailure'>): Promise<void> {
  const me = thisWorker();
  for (const c of await loop.ledger.getChunks(loop.pool, loop.runId)) {
    if (c.status !== 'done' || (c.claim_pid === me.pid && c.claim_host === me.host)) continue;
    const t = (c.stats as { timings_ms?: Partial<Record<Stage, number>> } | null)?.timings_ms;
    for (const stage of chunkStages) loop.timings.add(stage, t?.[stage] ?? 0);
  }
}

function spawnWorkers(
  n: number,
  runId: string,
  run: { config: Config; params: RunParams; modelDir: string },
  outageBudgetMs: number | undefined,
): ChildProcess[] {
  const children: ChildProcess[] = [];
  // The coordinator's outage budget (a flag of its own is not in the environment the workers inherit).
  const budget = outageBudgetMs === undefined ? [] : ['--outage-budget', String(Math.round(outageBudgetMs / 1000))];
  for (let i = 0; i < n; i++) {
    const defaults = run.config.db.origin === 'libpq defaults' ? ['--libpq-defaults'] : [];
    const args = [
      bin,
      '--schema',
      run.config.schema,
      '--log-level',
      run.config.logLevel,
      '--no-pretty',
      ...defaults,
      'work',
      '--run',
      runId,
      '--model',
      run.modelDir,
      '--backend',
      run.params.backendChoice,
      '--wait',
      '30',
      ...budget,
    ];
    // The environment carries the connection (DATABASE_URL / PG*), as for the coordinator; the logs share its stdout.
    children.push(spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] }));
  }
  return children;
}

/** Waits for a local worker to end (SIGKILL after `timeoutMs`), and says how it ended: 0 done, 143/130 stopped by a signal, 1 failed. */
function exited(child: ChildProcess, timeoutMs: number, log: Logger): Promise<void> {
  const say = () => {
    const code = child.exitCode ?? (child.signalCode === null ? null : 128 + (osConstants.signals[child.signalCode] ?? 0));
    log.info({ exited_pid: child.pid, exit_code: code, signal: child.signalCode ?? undefined }, `local worker pid ${child.pid} exited (${code ?? 'unknown'})`);
  };
  if (child.exitCode !== null || child.signalCode !== null) {
    say();
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      say();
      resolve();
    });
  });
}

/**
 * The coordinator's view of a shared run's snapshot: when it is lost and taken again, every pending chunk
 * of the run is counted in the new one (not only those this process scores), since any worker may read any.
 */
export function sharedSource(view: ChunkSource, allPending: () => Promise<readonly PlannedChunk[]>): ChunkSource {
  return {
    get snapshotId() {
      return view.snapshotId;
    },
    async ensure(client, pending) {
      const counted = await view.ensure(client, await allPending());
      if (!counted) return undefined;
      const rows = new Map(counted.map((c) => [c.chunkNo, c.rows]));
      return pending.map((c) => ({ ...c, rows: rows.get(c.chunkNo) }));
    },
  };
}
