import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type pg from 'pg';
import { ResilientClient } from '../db/resilientClient.js';
import { quoteIdent, withTransaction } from '../db/sql.js';
import { LockedError, LockLostError, LockStuckError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatDuration } from '../format.js';
import type { Ledger } from './ledger.js';
import { backendAliveSql, holderAliveSql, lockTiming, type LockTiming } from './lockLiveness.js';

/** The lock of schema version 3 (one writer per schema); unused since runs lock per model. */
export const runLockName = 'run';

/** One writer per model: the lock a run, resume or publish of this model (manifest `name`) takes. */
export function modelLockName(modelName: string): string {
  return `model:${modelName}`;
}

/** What a holder is doing, for the "who holds it" message. */
export type LockPurpose = 'run' | 'resume' | 'publish' | 'rollback' | 'retire';

interface HolderRow {
  run_id: string | null;
  purpose: string | null;
  host: string | null;
  pid: number | null;
  acquired_at: Date | null;
  token: string | null;
  alive: boolean;
  backend_alive: boolean;
  lease_expired: boolean;
  heartbeat_age_ms: number | null;
  held_ms: number | null;
}

export interface TakeLockOptions {
  schema: string;
  /** The model (manifest `name`) whose lock to take: one writer per model (see {@link modelLockName}). */
  modelName: string;
  purpose: LockPurpose;
  log: Logger;
  /** Where, for messages: "db:5432/x". */
  where: string;
  /**
   * The ledger's rules, for every command that writes (run, resume, publish --force): the longest recent
   * succeeded run sets when a holder counts as stuck, and the runs of dead holders are marked interrupted
   * in the acquiring transaction (reported through `onDead`). Without it (tests holding the lock): no
   * stuck rule beyond the hour, no runs marked.
   */
  ledger?: Ledger;
  onDead?(runIds: string[]): void;
  timing?: LockTiming;
}

/**
 * Takes the run lock or throws: {@link LockedError} (exit 75, try later) naming the holder, or
 * {@link LockStuckError} (exit 69) when the holder has kept it far longer than a normal run. A holder
 * whose backend just vanished gets the grace to come back; this waits for it, saying so at info.
 */
export async function takeRunLock(pool: pg.Pool, opts: TakeLockOptions): Promise<RunLock> {
  const timing = opts.timing ?? lockTiming;
  // One writer per model: two models run at once, the same model twice does not (exit 75).
  const name = modelLockName(opts.modelName);
  const s = opts.log;
  const lock = new RunLock(opts.schema, name, opts.purpose, s, timing);
  const { ledger } = opts;
  const onAcquired = ledger ? async (c: pg.ClientBase) => opts.onDead?.(await ledger.markDeadRuns(c)) : undefined;
  let waited = false;
  try {
    await lock.open(pool);
    for (;;) {
      const holder = await lock.tryTake(onAcquired);
      if (holder === undefined) {
        lock.startBeating();
        return lock;
      }
      if (!holder.backend_alive && !holder.lease_expired && holder.heartbeat_age_ms !== null) {
        // Its connection is gone but the grace is not over: a live holder reconnects within it.
        const waitMs = Math.max(100, timing.graceMs - holder.heartbeat_age_ms + 100);
        if (!waited)
          s.info(
            { holder_run_id: holder.run_id, holder_pid: holder.pid, holder_host: holder.host, wait_ms: waitMs },
            `the lock's holder, ${describeHolder(holder)}, lost its database connection; waiting up to ${Math.ceil(waitMs / 1000)} s for it to come back before taking the lock`,
          );
        waited = true;
        await new Promise((r) => setTimeout(r, waitMs));
        continue;
      }
      throw await heldError(pool, holder, opts);
    }
  } catch (err) {
    await lock.release();
    throw err;
  }
}

/** The stuck rule: held longer than 3x the longest recent succeeded run, and at least an hour. */
export function stuckAfterMs(normalRunMs: number | null): number {
  return Math.max(3_600_000, 3 * (normalRunMs ?? 0));
}

async function heldError(pool: pg.Pool, holder: HolderRow, opts: TakeLockOptions): Promise<Error> {
  const who = describeHolder(holder);
  const held = holder.held_ms ?? 0;
  const normal = opts.ledger ? await opts.ledger.longestRecentRunMs(pool, opts.modelName).catch(() => null) : null;
  const limit = stuckAfterMs(normal);
  const fields = { holder_run_id: holder.run_id ?? undefined, holder_host: holder.host, holder_pid: holder.pid, held_s: Math.round(held / 1000) };
  if (held > limit) {
    const msg =
      `${who} has held the lock on ${opts.where} schema "${opts.schema}" for ${formatDuration(held)}, far longer than a normal run ` +
      `(limit ${formatDuration(limit)}: 3 times the longest recent succeeded run${normal === null ? ', none yet' : ` (${formatDuration(normal)})`}, at least 1 h) ` +
      `and it still renews it: it may be stuck; look at it, and stop it (\`kill ${holder.pid}\` on ${holder.host}; a run stops after its chunk and can be resumed); nothing was done`;
    opts.log.error(fields, msg);
    return new LockStuckError(msg);
  }
  opts.log.warn(fields, `another run holds the lock: ${who}`);
  return new LockedError(`another run holds the lock on ${opts.where} schema "${opts.schema}": ${who}; nothing was done, try later`);
}

function describeHolder(h: Pick<HolderRow, 'run_id' | 'purpose' | 'pid' | 'host' | 'acquired_at'>): string {
  const since = h.acquired_at ? `, holding the lock since ${h.acquired_at.toISOString()}` : '';
  if (h.run_id !== null) return `run ${h.run_id} (pid ${h.pid} on ${h.host}${since})`;
  const command = h.purpose === 'retire' ? 'model retire' : (h.purpose ?? 'run');
  return `\`scorejob ${command}\` (pid ${h.pid} on ${h.host}${since})`;
}

/**
 * A held run lock: its connection, the heartbeat renewing its lease, and the fence a writer checks in
 * its transactions. The connection's loss is noticed at once and the lock re-registered on a new
 * connection (src/db/resilientClient.ts); if another process took it meanwhile, {@link lost} says so.
 */
export class RunLock {
  readonly token = randomUUID();
  private conn: ResilientClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  private released = false;
  /** Set once another process has taken the lock: this one must stop writing. */
  lost: LockLostError | undefined;

  constructor(
    private readonly schema: string,
    readonly name: string,
    private readonly purpose: LockPurpose,
    private readonly log: Logger,
    readonly timing: LockTiming,
  ) {}

  /** Opens the lock's own connection (application_name "scorejob lock"). */
  async open(pool: pg.Pool): Promise<void> {
    this.conn = await ResilientClient.connect(pool, { role: 'lock', log: this.log, onConnect: (c) => this.renew(c) });
  }

  private get client(): pg.PoolClient {
    return (this.conn as ResilientClient).client;
  }

  private get table(): string {
    return `${quoteIdent(this.schema)}.run_locks`;
  }

  /** One attempt: takes the lock (returns undefined) or returns its live holder. */
  async tryTake(onAcquired?: (c: pg.ClientBase) => Promise<void>): Promise<HolderRow | undefined> {
    const c = this.client;
    const table = this.table;
    // Nothing is written when the holder is alive: the transaction then commits what it only read.
    return withTransaction(c, async () => {
      // Never wait long on a row another acquirer (or a writer's fence) holds for an instant.
      await c.query(`SET LOCAL lock_timeout = '10s'`);
      await c.query(`INSERT INTO ${table} (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, [this.name]);
      const { rows } = await c.query<HolderRow>(
        `SELECT l.run_id::text, l.purpose, l.host, l.pid, l.acquired_at, l.token::text,
                ${holderAliveSql('l', '$2')} AS alive,
                ${backendAliveSql('l')} AS backend_alive,
                coalesce(l.lease_until <= now(), false) AS lease_expired,
                (extract(epoch FROM now() - l.heartbeat_at) * 1000)::int AS heartbeat_age_ms,
                (extract(epoch FROM now() - l.acquired_at) * 1000)::bigint AS held_ms
           FROM ${table} l WHERE l.name = $1 FOR UPDATE`,
        [this.name, this.timing.graceMs],
      );
      const row = rows[0] as HolderRow;
      if (row.alive) return { ...row, held_ms: Number(row.held_ms) };
      if (row.token !== null && row.lease_expired && row.backend_alive) {
        this.log.warn(
          { holder_run_id: row.run_id, holder_pid: row.pid, holder_host: row.host },
          `the lock's holder, ${describeHolder(row)}, stopped renewing its lease while connected (hung?); taking the lock over`,
        );
      }
      await c.query(
        `UPDATE ${table} SET token = $2, run_id = NULL, purpose = $3, host = $4, pid = $5, acquired_at = now(), ${registerSet('$6')} WHERE name = $1`,
        [this.name, this.token, this.purpose, hostname(), process.pid, this.timing.leaseMs],
      );
      await onAcquired?.(c);
      return undefined;
    });
  }

  /** Records the run this holder works on, in the caller's transaction (with the run row it creates or reopens). */
  async attachRun(c: pg.ClientBase, runId: string): Promise<void> {
    const { rowCount } = await c.query(`UPDATE ${this.table} SET run_id = $3 WHERE name = $1 AND token = $2`, [this.name, this.token, runId]);
    if (rowCount !== 1) throw this.lose('it was taken over before the run was recorded');
  }

  /**
   * The writer's fence, inside its transaction just before COMMIT: the lock must still be ours. FOR SHARE
   * makes a taker wait until this transaction ends, so no write commits after a takeover.
   */
  async fence(c: pg.ClientBase): Promise<void> {
    if (this.lost) throw this.lost;
    const { rowCount } = await c.query(`SELECT 1 FROM ${this.table} WHERE name = $1 AND token = $2 FOR SHARE`, [this.name, this.token]);
    if (rowCount !== 1) throw this.lose(takenOver);
  }

  /**
   * Makes sure the lock is still ours and its connection up (after a connection loss): reconnects if
   * needed and renews the lease. Throws {@link LockLostError} if it was taken over, or the connection
   * error while the database is unreachable (the caller retries).
   */
  async ensure(): Promise<void> {
    if (this.lost) throw this.lost;
    const conn = this.conn as ResilientClient;
    await conn.ensure(false);
    // Set by the lease renewal, which may have run while this awaited (TypeScript keeps the narrowing above).
    const lost = this.lost as LockLostError | undefined;
    if (lost) throw lost;
    await this.beat(true);
  }

  startBeating(): void {
    this.timer = setInterval(() => void this.beat(false).catch(() => undefined), this.timing.beatMs);
    this.timer.unref();
  }

  /** Renews the lease; a failure marks the connection lost, which reconnects and re-registers. */
  private async beat(strict: boolean): Promise<void> {
    const conn = this.conn as ResilientClient;
    if (this.released || this.lost || conn.isDown) return;
    if (this.beating && !strict) return; // the last renewal has not come back yet
    const p = this.renew(conn.client);
    this.beating = p;
    try {
      await p;
    } catch (err) {
      const lost = this.lost as LockLostError | undefined;
      if (lost) throw lost;
      conn.markDown(err);
      if (strict) throw err;
    } finally {
      if (this.beating === p) this.beating = undefined;
    }
  }

  private async renew(c: pg.PoolClient): Promise<void> {
    const { rowCount } = await c.query(`UPDATE ${this.table} SET ${registerSet('$3')} WHERE name = $1 AND token = $2`, [
      this.name,
      this.token,
      this.timing.leaseMs,
    ]);
    if (rowCount !== 1) throw this.lose(takenOver);
  }

  private lose(why: string): LockLostError {
    if (!this.lost) {
      this.lost = new LockLostError(`lost the run lock: ${why}; this process stops writing`);
      if (!this.released) this.log.error({ lock: this.name }, this.lost.message);
    }
    return this.lost;
  }

  /** Frees the lock (best effort: if this fails, the backend's end frees it after the grace). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    const conn = this.conn;
    if (!conn) return;
    await this.beating?.catch(() => undefined);
    if (!this.lost && !conn.isDown) {
      const c = conn.client;
      await c
        .query(
          `UPDATE ${this.table} SET token = NULL, run_id = NULL, backend_pid = NULL, backend_start = NULL, lease_until = now() WHERE name = $1 AND token = $2`,
          [this.name, this.token],
        )
        .catch(() => undefined);
    }
    await conn.close();
  }
}

const takenOver = 'another process took it over (this process had lost its connection, or stopped renewing the lease, for too long)';

/** The columns a (re-)registration sets: this connection's backend, a fresh heartbeat and lease. */
function registerSet(lease: string): string {
  return `backend_pid = pg_backend_pid(), backend_start = (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()),
          heartbeat_at = now(), lease_until = now() + ${lease}::int * interval '1 millisecond'`;
}

/** Whether anyone holds the run lock now (alive, grace included): the due check's "in progress". */
export async function runLockHeld(c: pg.ClientBase, schema: string, name = runLockName): Promise<boolean> {
  const { rows } = await c.query<{ held: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM ${quoteIdent(schema)}.run_locks l WHERE l.name = $1 AND ${holderAliveSql('l', '$2')}) AS held`,
    [name, lockTiming.graceMs],
  );
  return rows[0]?.held === true;
}

/**
 * Whether a live lock holder works on this run: `alive` (its backend is there), `grace` (its connection
 * just dropped; it may come back within the grace), or `none` (a leftover `running` row).
 */
export async function runHolderState(c: pg.ClientBase | pg.Pool, schema: string, runId: string): Promise<'alive' | 'grace' | 'none'> {
  const { rows } = await c.query<{ alive: boolean; backend_alive: boolean }>(
    `SELECT ${holderAliveSql('l', '$2')} AS alive,
            ${backendAliveSql('l')} AS backend_alive
       FROM ${quoteIdent(schema)}.run_locks l WHERE l.run_id = $1`,
    [runId, lockTiming.graceMs],
  );
  const row = rows.find((r) => r.alive);
  return row === undefined ? 'none' : row.backend_alive ? 'alive' : 'grace';
}
