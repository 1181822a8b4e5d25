import type pg from 'pg';
import { quoteIdent, withTransaction } from '../db/sql.js';
import type { ChallengerParams, Ledger } from './ledger.js';

/** A run's challenger as the ledger holds it (sql/011_challenger.sql). */
export interface ChallengerRun {
  run_id: string;
  status: string;
  model_version: string;
  published_at: Date | null;
}

/** What one pass over both runs' scores gives (src/stats/challenger.ts turns it into the comparison). */
export interface ScoreComparisonRows {
  /** Customers both models scored. */
  both: number;
  /** Pearson's r over them (null: fewer than two, or a constant score). */
  correlation: number | null;
  /** The size of a top decile: ceil(both / 10). */
  top: number;
  /** Customers in the champion's top decile and in the challenger's. */
  topOverlap: number;
  /** Customers per decile of the champion's scores: the champion's (about both/10 each) and the challenger's. */
  championDeciles: number[];
  challengerDeciles: number[];
  /** Customers whose band differs (null without bands). */
  bandChanges: number | null;
}

/**
 * The ledger's part of challengers (`run --challenger DIR`, sql/011_challenger.sql): score_runs' kind
 * 'challenger' and champion_run_id, and the comparison of the two runs' score tables. Kept apart from
 * ledger.ts, which other work changes too.
 */
export class ChallengerLedger {
  private readonly s: string;
  constructor(private readonly ledger: Ledger) {
    this.s = quoteIdent(ledger.schema);
  }

  /** Marks a new run as the challenger of `championRunId`, in the transaction that creates it. */
  async markChallenger(c: pg.ClientBase, runId: string, championRunId: string): Promise<void> {
    await c.query(`UPDATE ${this.s}.score_runs SET kind = 'challenger', champion_run_id = $2 WHERE run_id = $1`, [runId, championRunId]);
  }

  /** Records the challenger on its champion's params, in the transaction that creates the challenger. */
  async recordOnChampion(c: pg.ClientBase, championRunId: string, challenger: ChallengerParams): Promise<void> {
    await c.query(`UPDATE ${this.s}.score_runs SET params = params || jsonb_build_object('challenger', $2::jsonb) WHERE run_id = $1`, [championRunId, JSON.stringify(challenger)]);
  }

  /** The challenger of a run, if it has one. */
  async challengerOf(c: pg.ClientBase, championRunId: string): Promise<ChallengerRun | undefined> {
    const { rows } = await c.query<ChallengerRun>(
      `SELECT run_id::text, status, model_version, published_at FROM ${this.s}.score_runs WHERE champion_run_id = $1`,
      [championRunId],
    );
    return rows[0];
  }

  /** The champion of a challenger run; undefined for any other run. */
  async championOf(c: pg.ClientBase, runId: string): Promise<string | undefined> {
    const { rows } = await c.query<{ champion: string | null }>(`SELECT champion_run_id::text AS champion FROM ${this.s}.score_runs WHERE run_id = $1`, [runId]);
    return rows[0]?.champion ?? undefined;
  }

  /**
   * One statement over both runs' tables, joined on the customers both scored: Pearson's r (`corr`), the
   * overlap of the top deciles (each the first ceil(n/10) by score descending, ties broken by customer_id:
   * two window sorts), and the customers per decile of the champion's scores (its deciles' cut points,
   * percentile_cont), and, with bands, the customers whose band differs (each score banded by its own
   * run's bounds). In a transaction of its own with work_mem for the three in-memory sorts of the joined rows.
   */
  async compare(c: pg.ClientBase, championRunId: string, challengerRunId: string, bands: { champion: number[]; challenger: number[] } | undefined): Promise<ScoreComparisonRows> {
    const a = this.ledger.runTable(championRunId);
    const b = this.ledger.runTable(challengerRunId);
    // Ten counts per side, one pass: the SQL is built from constants only.
    const perDecile = (col: 'ka' | 'kb') => `ARRAY[${Array.from({ length: 10 }, (_, g) => `count(*) FILTER (WHERE ${col} = ${g})`).join(', ')}]::text[]`;
    const sql = `WITH j AS MATERIALIZED (
         SELECT a.customer_id, a.score::float8 AS a, b.score::float8 AS b FROM ${a} a JOIN ${b} b USING (customer_id)),
       top AS (SELECT ceil(count(*) / 10.0)::bigint AS n FROM j),
       d AS (SELECT percentile_cont(ARRAY[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) WITHIN GROUP (ORDER BY a) AS cuts FROM j),
       r AS (SELECT a, b, width_bucket(a, d.cuts) AS ka, width_bucket(b, d.cuts) AS kb,
                    row_number() OVER (ORDER BY a DESC, customer_id) AS ra, row_number() OVER (ORDER BY b DESC, customer_id) AS rb FROM j, d)
       SELECT count(*) AS both, corr(r.a, r.b) AS r, top.n AS top, count(*) FILTER (WHERE ra <= top.n AND rb <= top.n) AS overlap,
              ${perDecile('ka')} AS a_deciles, ${perDecile('kb')} AS b_deciles,
              CASE WHEN $1::float8[] IS NULL THEN NULL
                   ELSE count(*) FILTER (WHERE width_bucket(r.a, $1::float8[]) <> width_bucket(r.b, $2::float8[])) END AS band_changes
         FROM r, top GROUP BY top.n`;
    const rows = await withTransaction(c, async () => {
      await c.query(`SET LOCAL work_mem = '256MB'`);
      return (await c.query<{ both: string; r: number | null; top: string; overlap: string; a_deciles: string[]; b_deciles: string[]; band_changes: string | null }>(sql, [bands?.champion ?? null, bands?.challenger ?? null])).rows;
    });
    const r = rows[0];
    // No customer both scored: no row at all.
    if (!r) return { both: 0, correlation: null, top: 0, topOverlap: 0, championDeciles: new Array<number>(10).fill(0), challengerDeciles: new Array<number>(10).fill(0), bandChanges: bands ? 0 : null };
    return {
      both: Number(r.both),
      correlation: r.r,
      top: Number(r.top),
      topOverlap: Number(r.overlap),
      championDeciles: r.a_deciles.map(Number),
      challengerDeciles: r.b_deciles.map(Number),
      bandChanges: r.band_changes === null ? null : Number(r.band_changes),
    };
  }
}
