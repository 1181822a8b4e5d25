import { copyReasons, encodeReasons } from '../../db/reasonsCopy.js';
import type { Ledger } from '../../ledger/ledger.js';
import { allocateReasons, type Explainer, type ReasonBuffers } from '../../model/explainer.js';
import type { ChunkSidecar } from '../../chunks/chunkLoop.js';
import type { KeyBytes } from '../../keyColumn.js';

/**
 * The chunk loop's sidecar that explains each chunk's rows and writes their reasons in the chunk's
 * transaction (timed as part of the chunk's predict and write stages). The explainer's buffers are reused
 * chunk after chunk; each chunk's encoded COPY buffer is its own (a chunk is written while the next is
 * prepared): one allocation per chunk, none per row.
 */
export function reasonsSidecar(explainer: Explainer, ledger: Ledger, runId: string): ChunkSidecar {
  const table = ledger.storage.reasonsTable(runId);
  let buffers: ReasonBuffers = allocateReasons(explainer.k, 0);
  let explained = 0;
  let keyBytes: KeyBytes | undefined;
  return {
    async prepare(x, rows, scores, batch) {
      keyBytes = batch.keyBytes;
      if (buffers.contribution.length < rows * explainer.k) buffers = allocateReasons(explainer.k, Math.ceil(rows * 1.25));
      explained = rows > 0 ? await explainer.explain(x, rows, scores, buffers) : 0;
    },
    seal(keys, accepted) {
      if (explained !== accepted) throw new Error(`internal: ${explained} rows explained, ${accepted} scored`);
      if (accepted === 0) return async () => undefined;
      const encoded = encodeReasons(keys, { feature: buffers.feature, contribution: buffers.contribution, k: explainer.k }, accepted, undefined, keyBytes);
      return (c) => copyReasons(c, table, encoded);
    },
  };
}
