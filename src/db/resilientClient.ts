import type pg from 'pg';
import type { Logger } from '../log.js';
import { describeDbError } from './describeError.js';
import { connectAs } from './pool.js';
import { isTransient } from './sqlstate.js';

export interface ResilientOptions {
  /** The connection's role, for application_name ("scorejob ledger") and messages. */
  role: string;
  log: Logger;
  /** Run on every new connection before it is used (e.g. re-register the lock); a non-transient error stops the reconnecting. */
  onConnect?(c: pg.PoolClient): Promise<void>;
}

/**
 * A long-lived connection that notices its loss at once (pg's 'error'/'end' events, which fire even
 * while it sits idle: a terminated backend, idle_session_timeout, a server restart) and reconnects in
 * the background, every 0.5 s, until it is back or closed. Reconnection attempts are shared, so a
 * lost client is released exactly once and a new one is never made twice.
 */
export class ResilientClient {
  private current: pg.PoolClient;
  private down = false;
  private closed = false;
  private attempt: Promise<void> | undefined;
  private loop: Promise<void> | undefined;
  /** A non-transient failure of onConnect (e.g. the lock was taken over): reconnecting stopped. */
  failure: unknown;

  constructor(
    private readonly pool: pg.Pool,
    client: pg.PoolClient,
    private readonly opts: ResilientOptions,
  ) {
    this.current = client;
    this.watch(client);
  }

  static async connect(pool: pg.Pool, opts: ResilientOptions): Promise<ResilientClient> {
    return new ResilientClient(pool, await connectAs(pool, opts.role), opts);
  }

  /** The current connection (a lost one until the reconnection succeeds: queries on it fail as connection errors). */
  get client(): pg.PoolClient {
    return this.current;
  }

  get isDown(): boolean {
    return this.down;
  }

  /**
   * Makes sure the connection works: probes it (a loss not noticed yet), and if it is down makes one
   * reconnection attempt (shared with the background loop). Throws the connection error while the
   * database is unreachable, or the failure that stopped the reconnecting.
   */
  async ensure(probe = true): Promise<void> {
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- the failure as onConnect threw it, whatever it is
    if (this.failure !== undefined) throw this.failure;
    if (!this.down && probe) {
      try {
        await this.current.query('SELECT 1');
        return;
      } catch (err) {
        this.markDown(err);
      }
    }
    if (this.down) await this.reconnectOnce();
  }

  /** Declares the connection lost (after a failed query), releasing it once and starting the reconnection. */
  markDown(err: unknown): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.current.release(err instanceof Error ? err : true);
    this.loop ??= this.reconnectLoop();
  }

  private watch(client: pg.PoolClient): void {
    const onGone = (err?: Error) => {
      if (client !== this.current || this.closed || this.down) return;
      const why = err ? describeDbError(err) : 'the server closed it';
      this.opts.log.warn({ connection: this.opts.role, err: why }, `the ${this.opts.role} connection was lost (${why}); reconnecting`);
      this.markDown(err ?? new Error('connection ended'));
    };
    client.on('error', onGone);
    client.on('end', () => onGone());
  }

  private reconnectOnce(): Promise<void> {
    this.attempt ??= this.reconnect().finally(() => (this.attempt = undefined));
    return this.attempt;
  }

  private async reconnect(): Promise<void> {
    if (this.closed) throw new Error(`the ${this.opts.role} connection is closed`);
    const fresh = await connectAs(this.pool, this.opts.role);
    try {
      await this.opts.onConnect?.(fresh);
    } catch (err) {
      fresh.release(true);
      if (!isTransient(err)) this.failure = err;
      throw err;
    }
    if (this.closed) {
      fresh.release();
      return;
    }
    this.current = fresh;
    this.down = false;
    this.watch(fresh);
    this.opts.log.info({ connection: this.opts.role }, `the ${this.opts.role} connection is back`);
  }

  private async reconnectLoop(): Promise<void> {
    try {
      while (this.down && !this.closed && this.failure === undefined) {
        await this.reconnectOnce().catch(() => new Promise((r) => setTimeout(r, 500)));
      }
    } finally {
      this.loop = undefined;
    }
  }

  /** Stops reconnecting and gives the connection back (a lost one was released already). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.attempt?.catch(() => undefined);
    if (!this.down) this.current.release();
  }
}
