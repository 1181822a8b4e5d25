import type pg from 'pg';
import type { SourceRef } from '../db/copyReader.js';
import { ExportedSnapshot, inSnapshot } from '../db/snapshot.js';
import { RunFailedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Ledger, PlannedChunk } from '../ledger/ledger.js';
import { withClient } from '../db/sql.js';
import { countChunkRows, planChunks, rewrittenSinceSnapshot, type CountedChunk, type Plan } from './plan.js';

export interface SourceViewDeps {
  pool: pg.Pool;
  ledger: Ledger;
  /** The ledger connection (a getter: a reconnect replaces it). */
  ledgerClient(): pg.ClientBase;
  runId: string;
  source: SourceRef;
  log: Logger;
}

/**
 * What a run reads of its source: one snapshot, exported when the run (or its resume) starts and held open
 * on a connection of its own until the last chunk is read. The plan and every chunk read import it, so an
 * uninterrupted run scores exactly the source as of its start, whatever changes meanwhile, and each chunk
 * reads exactly the rows the plan counted in it. A resume, or a run whose snapshot connection was lost,
 * takes a new snapshot and counts its unfinished chunks again in it: those read the source as of then.
 */
export class SourceView {
  private constructor(
    private readonly d: SourceViewDeps,
    private snapshot: ExportedSnapshot,
  ) {}

  /** Exports the snapshot and records its id on the run (where another worker could import it). */
  static async open(d: SourceViewDeps): Promise<SourceView> {
    const snapshot = await ExportedSnapshot.export(d.pool.options);
    try {
      await d.ledger.recordSnapshot(d.ledgerClient(), d.runId, snapshot.id);
    } catch (err) {
      await snapshot.close();
      throw err;
    }
    return new SourceView(d, snapshot);
  }

  /** The snapshot each chunk read imports (it changes if the snapshot is lost and taken again). */
  get snapshotId(): string {
    return this.snapshot.id;
  }

  /**
   * Plans the chunks in the snapshot, in a transaction of its own that commits at once: the exporting
   * transaction reads nothing, so nothing holds a lock on the source between chunk reads.
   */
  plan(chunkSize: number): Promise<Plan> {
    return this.onOwnConnection(async (c) => {
      await this.assertNotRewritten(c);
      return planChunks(c, this.d.source, chunkSize);
    });
  }

  /** Counts `pending` in the snapshot (on `client`, or a connection of its own) and records the counts on the chunks. */
  async recount(pending: readonly PlannedChunk[], client?: pg.ClientBase): Promise<CountedChunk[]> {
    const count = async (c: pg.ClientBase) => {
      await this.assertNotRewritten(c);
      return countChunkRows(c, this.d.source, pending);
    };
    const counted = client ? await inSnapshot(client, this.snapshot.id, () => count(client)) : await this.onOwnConnection(count);
    await this.d.ledger.recordChunkRows(this.d.ledgerClient(), this.d.runId, counted);
    return counted;
  }

  /**
   * After a failed chunk: if the snapshot is gone (its connection lost: a server restart, a terminated
   * backend), takes a new one and counts `pending` in it. Returns the new counts, or undefined when the
   * snapshot is still there. The chunks already done keep what they read.
   */
  async ensure(client: pg.ClientBase, pending: readonly PlannedChunk[]): Promise<CountedChunk[] | undefined> {
    if (await this.snapshot.alive()) return undefined;
    await this.snapshot.close();
    this.snapshot = await ExportedSnapshot.export(this.d.pool.options);
    await this.d.ledger.recordSnapshot(this.d.ledgerClient(), this.d.runId, this.snapshot.id);
    const counted = await this.recount(pending, client);
    this.d.log.warn(
      { snapshot: this.snapshot.id, chunks_left: pending.length },
      `the connection holding the run's snapshot of the source was lost; the ${pending.length} unfinished chunks read the source as of now (snapshot ${this.snapshot.id})`,
    );
    return counted;
  }

  /** Ends the snapshot: it holds back VACUUM, so not a moment longer than the reads need it. */
  close(): Promise<void> {
    return this.snapshot.close();
  }

  /** In the snapshot: a table rewritten after it was taken would plan (or count) empty, and read empty. */
  private async assertNotRewritten(client: pg.ClientBase): Promise<void> {
    const rewritten = await rewrittenSinceSnapshot(client, this.d.source);
    if (rewritten.length > 0) {
      throw new RunFailedError(
        `${rewritten.join(', ')} was rewritten (ALTER TABLE … TYPE, VACUUM FULL, CLUSTER or TRUNCATE) after the run took its snapshot of the source, ` +
          `which sees it empty; a resume takes a new snapshot`,
        this.d.runId,
      );
    }
  }

  private async onOwnConnection<T>(fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
    // A connection a failure left mid-transaction is destroyed, not returned to the pool.
    return withClient(
      this.d.pool,
      async (client) => {
        await client.query(`SET application_name = 'scorejob planner'`);
        return inSnapshot(client, this.snapshot.id, () => fn(client));
      },
      { discardOnError: true },
    );
  }
}
