import type pg from 'pg';
import type { ColumnBatch } from '../columns.js';
import type { BinaryRowDecoder } from './binaryRowDecoder.js';

/** The pg-protocol listener CopyOutQuery takes the socket from while the COPY runs, and gives it back to. */
type DataListener = (chunk: Buffer) => void;

// Backend message types (PostgreSQL protocol, "Message Formats").
const copyData = 0x64; // 'd'
const copyDone = 0x63; // 'c'
const errorResponse = 0x45; // 'E'

/**
 * `COPY ... TO STDOUT` as a pg Submittable that decodes the CopyData payloads where they lie in the socket's
 * chunks. Why not pg-copy-streams' copy-to: the server sends one CopyData message per row, and copy-to
 * makes a Buffer view per message and a concatenated Buffer per socket read, so a million rows cost a
 * million short-lived objects (~100 ms of CPU and ~40 MB more peak RSS in a run, from the young generation
 * they inflate). The protocol handling is copy-to's: pg's data listener is set aside while the COPY runs;
 * at CopyDone, or at an ErrorResponse, the rest of the bytes go back to it, so pg sees CommandComplete,
 * the error and ReadyForQuery as for any query, and the connection stays usable. Decoding happens as the
 * bytes arrive, so nothing is buffered and no backpressure is needed.
 */
export class CopyOutQuery {
  private connection: pg.Connection | undefined;
  private pgListener: DataListener | undefined;
  private readonly listener: DataListener = (chunk) => this.onData(chunk);
  /** Bytes of a message header (type + length) split across socket chunks. */
  private readonly header = Buffer.alloc(5);
  private headerBytes = 0;
  private messageType = 0;
  /** Bytes of the current message's payload still to come. */
  private remaining = 0;
  private failure: Error | undefined;

  constructor(
    private readonly text: string,
    private readonly rows: BinaryRowDecoder,
    private readonly resolve: (batch: ColumnBatch) => void,
    private readonly reject: (err: Error) => void,
  ) {}

  /** Called by pg when the query's turn comes: take the socket's data, then send the query. An error returned goes to handleError. */
  submit(connection: pg.Connection): Error | undefined {
    const stream = connection.stream;
    const listeners = stream.listeners('data') as DataListener[];
    if (listeners.length !== 1) return new Error(`cannot take over the connection for COPY: it has ${listeners.length} data listeners, expected pg's one`);
    this.connection = connection;
    this.pgListener = listeners[0];
    stream.removeListener('data', this.pgListener as DataListener);
    stream.on('data', this.listener);
    connection.query(this.text);
    return undefined;
  }

  private onData(chunk: Buffer): void {
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let p = 0;
    while (p < chunk.length) {
      if (this.remaining === 0) {
        const start = p;
        if (this.headerBytes === 0 && chunk.length - p >= 5) {
          this.messageType = chunk[p]!;
          this.remaining = view.getInt32(p + 1) - 4;
          p += 5;
        } else {
          // A header split across chunks (rare): gather its 5 bytes first.
          const n = Math.min(5 - this.headerBytes, chunk.length - p);
          this.headerBytes += chunk.copy(this.header, this.headerBytes, p, p + n);
          p += n;
          if (this.headerBytes < 5) return;
          this.headerBytes = 0;
          this.messageType = this.header[0]!;
          this.remaining = this.header.readInt32BE(1) - 4;
        }
        if (this.messageType === errorResponse) {
          // pg reports the error (and the ReadyForQuery after it) to handleError: give it the whole message.
          const carried = p - start < 5 ? Buffer.from(this.header) : undefined;
          this.giveBack(carried ? Buffer.concat([carried, chunk.subarray(p)]) : chunk.subarray(start));
          return;
        }
        if (this.messageType === copyDone) {
          this.giveBack(chunk.subarray(p + this.remaining));
          return;
        }
      }
      const end = Math.min(chunk.length, p + this.remaining);
      if (this.messageType === copyData && this.failure === undefined) {
        try {
          this.rows.feed(chunk, view, p, end);
        } catch (err) {
          // Keep reading to CopyDone, so the connection ends the COPY cleanly; report at ReadyForQuery.
          this.failure = err as Error;
        }
      }
      this.remaining -= end - p;
      p = end;
    }
  }

  /** Hands the socket back to pg with the bytes after the COPY data. */
  private giveBack(rest: Buffer): void {
    const stream = (this.connection as pg.Connection).stream;
    const pgListener = this.pgListener as DataListener;
    stream.removeListener('data', this.listener);
    stream.on('data', pgListener);
    if (rest.length > 0) pgListener(rest);
  }

  handleCommandComplete(): void {}

  handleReadyForQuery(): void {
    const failure = this.failure ?? (this.rows.ended ? undefined : new Error('binary COPY stream ended in the middle of a row'));
    if (failure) this.reject(failure);
    else this.resolve(this.rows.batch);
  }

  handleError(err: Error): void {
    // A lost connection can end the COPY before CopyDone: stop listening to a socket pg has given up on.
    if (this.connection && this.pgListener && this.connection.stream.listeners('data').includes(this.listener)) {
      this.connection.stream.removeListener('data', this.listener);
      this.connection.stream.on('data', this.pgListener);
    }
    this.reject(err);
  }
}
