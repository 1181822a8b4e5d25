import type pg from 'pg';
import { copyFloat4Bits } from '../db/copyFloat4.js';
import { quoteIdent } from '../db/sql.js';
import { OnlyNewLedger } from './onlyNewLedger.js';
import type { RunTables } from './runTables.js';

/**
 * A run's scores streamed as float32 bits (binary COPY, nothing kept, no sort), for its percentile cut
 * points (src/publish/cutPoints.ts, src/stats/scoreCuts.ts): all of them, those in value ranges, a
 * layer's own and those it hides.
 */
export class ScoreStreams {
  private readonly s: string;
  private readonly layers: OnlyNewLedger;

  constructor(private readonly ledger: RunTables) {
    this.s = quoteIdent(ledger.schema);
    this.layers = new OnlyNewLedger(ledger);
  }

  /**
   * Streams the float32 bits of the run's scores in the value ranges [t0, t1), [t2, t3), … (`thresholds`
   * ascending, float32 values) to `sink`: one scan, no sort, nothing kept (src/stats/scoreCuts.ts).
   * COPY takes no parameters: the thresholds are written as float literals, from numbers only.
   */
  async scoresInRanges(c: pg.ClientBase, runId: string, thresholds: readonly number[], sink: (bits: number) => void): Promise<void> {
    const literal = (t: number) => (t === Infinity ? "'Infinity'" : Number.isFinite(t) ? `'${String(t)}'` : "'-Infinity'");
    const array = `ARRAY[${thresholds.map(literal).join(', ')}]::real[]`;
    await copyFloat4Bits(
      c,
      `COPY (SELECT score FROM ${await this.scores(c, runId)} WHERE width_bucket(score, ${array}) % 2 = 1) TO STDOUT (FORMAT binary)`,
      sink,
    );
  }

  /** Streams the float32 bits of every score of the run (through its layer) to `sink`: one scan, nothing kept. */
  async allScores(c: pg.ClientBase, runId: string, sink: (bits: number) => void): Promise<void> {
    await copyFloat4Bits(c, `COPY (SELECT score FROM ${await this.scores(c, runId)}) TO STDOUT (FORMAT binary)`, sink);
  }

  /** Streams the float32 bits of the scores a layered run hides in the table of the run below it. */
  async hiddenScores(c: pg.ClientBase, runId: string, underRunId: string, sink: (bits: number) => void): Promise<void> {
    await copyFloat4Bits(
      c,
      `COPY (SELECT b.score FROM ${this.ledger.runTable(underRunId)} b JOIN ${this.s}.score_layer_hidden h ON h.customer_id = b.customer_id
              WHERE h.run_id = ${BigInt(runId).toString()}) TO STDOUT (FORMAT binary)`,
      sink,
    );
  }

  /** Streams the float32 bits of the scores in the run's own table. */
  async ownScores(c: pg.ClientBase, runId: string, sink: (bits: number) => void): Promise<void> {
    await copyFloat4Bits(c, `COPY (SELECT score FROM ${this.ledger.runTable(runId)}) TO STDOUT (FORMAT binary)`, sink);
  }

  /** The run's scores as a subquery, through its layer if it is one (RunTables.runScores). */
  private async scores(c: pg.ClientBase, runId: string): Promise<string> {
    return this.ledger.runScores(runId, (await this.layers.layerOf(c, runId))?.underRunId);
  }
}
