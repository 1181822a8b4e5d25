import type { ChunkClaim, ChunkClaims } from '../ledger/chunkClaims.js';
import type { Logger } from '../log.js';
import type { ChunkLoopDeps } from '../chunks/chunkLoop.js';

/** What the held claims need of a claim loop's dependencies. */
export type HeldClaimsDeps = Pick<ChunkLoopDeps, 'pool' | 'runId'> & { claims: ChunkClaims; log: Logger; leaseMs: number };

/**
 * The claims a worker holds, by chunk number: the chunk in flight and the one read ahead. Their leases
 * are renewed from construction until `stop`; a claim found lost is said once in the log.
 */
export class HeldClaims extends Map<number, ChunkClaim> {
  private readonly lostSaid = new Set<string>();
  private readonly renewing = new Set<string>();
  private readonly renewal: NodeJS.Timeout;

  constructor(private readonly d: HeldClaimsDeps) {
    super();
    // Renewed on the pool, apart from the chunk's reader and writer, so a long read or write never lets a lease lapse.
    this.renewal = setInterval(() => this.renewAll(), Math.max(100, Math.floor(d.leaseMs / 3)));
    this.renewal.unref();
  }

  // One renewal per claim at a time: a chunk whose commit waits (on a lock) holds its row, and its renewal
  // waits behind it; renewals piling up there would take every connection of the pool.
  private renewAll(): void {
    const { d } = this;
    for (const c of this.values()) {
      if (this.renewing.has(c.token)) continue;
      this.renewing.add(c.token);
      void d.claims
        .renew(d.pool, d.runId, c, d.leaseMs)
        .then(
          (ours) => (ours ? undefined : this.sayLost(c.chunkNo, c.token)),
          () => undefined,
        )
        .finally(() => this.renewing.delete(c.token));
    }
  }

  /** Logs (once per claim) that the claim on `chunkNo` was taken over by another worker. */
  sayLost(chunkNo: number, token: string | undefined): void {
    if (token !== undefined && this.lostSaid.has(token)) return;
    if (token !== undefined) this.lostSaid.add(token);
    this.d.log.warn(
      { chunk: chunkNo, claim_lost: true },
      `lost the claim on chunk ${chunkNo}: its lease expired and another worker took it over; this worker's work on it is rolled back`,
    );
  }

  /** Gives every held claim back (best effort: a claim already lost needs nothing). */
  async releaseAll(): Promise<void> {
    for (const c of this.values()) await this.d.claims.release(this.d.pool, this.d.runId, c).catch(() => undefined);
    this.clear();
  }

  /** Stops renewing the leases. */
  stop(): void {
    clearInterval(this.renewal);
  }
}
