import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

/** Binary COPY's header: signature (11), flags (4), header extension length (4). */
const headerBytes = 19;
/** One row of one float4: field count (2), length (4), the value (4). */
const rowBytes = 10;

/**
 * `COPY (SELECT <one real column> …) TO STDOUT (FORMAT binary)`, handing each value's float32 bits to
 * `sink` as they arrive: nothing is kept, so memory does not grow with the rows. A NULL is skipped.
 * Through pipeline, so an error ends the COPY (and the caller's connection stays usable).
 */
export async function copyFloat4Bits(client: pg.ClientBase, sql: string, sink: (bits: number) => void): Promise<void> {
  let skip = headerBytes;
  /** Bytes of a row split across the stream's chunks. */
  const carry = Buffer.alloc(rowBytes);
  let carried = 0;
  let ended = false;
  const take = (row: Buffer, at: number): void => {
    const fields = row.readInt16BE(at);
    if (fields === -1) {
      ended = true;
      return;
    }
    if (fields !== 1) throw new Error(`expected one column per row from COPY, got ${fields}`);
    const len = row.readInt32BE(at + 2);
    if (len === 4) sink(row.readUInt32BE(at + 6));
    else if (len !== -1) throw new Error(`expected a real (4 bytes), got ${len} bytes`);
  };
  const parser = new Writable({
    write(chunk: Buffer, _encoding, done) {
      try {
        let p = Math.min(skip, chunk.length);
        skip -= p;
        while (p < chunk.length && !ended) {
          if (carried > 0 || chunk.length - p < rowBytes) {
            // A NULL row (6 bytes) or the trailer (2) can only be last or split; a whole row is 10 bytes.
            const n = Math.min(rowBytes - carried, chunk.length - p);
            chunk.copy(carry, carried, p, p + n);
            carried += n;
            p += n;
            if (carried >= 2 && carry.readInt16BE(0) === -1) ended = true;
            else if (carried === rowBytes) {
              take(carry, 0);
              carried = 0;
            }
            continue;
          }
          if (chunk.readInt16BE(p) === -1) {
            ended = true;
            break;
          }
          if (chunk.readInt32BE(p + 2) === -1) {
            p += 6; // a NULL: no value bytes
            continue;
          }
          take(chunk, p);
          p += rowBytes;
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
  await pipeline(client.query(copyTo(sql)), parser);
}
