import type pg from 'pg';
import { quoteIdent } from '../../db/sql.js';
import type { Ledger, SiblingRun } from '../../ledger/ledger.js';
import type { ChallengerParams } from './challengerTypes.js';

/** A run's challenger as the ledger holds it (sql/011_challenger.sql). */
export type ChallengerRun = SiblingRun;

/** What one pass over both runs' scores gives (comparison.ts turns it into the comparison). */
export interface ScoreComparisonRows {
  /** Customers both models scored. */
  both: number;
  /** Pearson's r over them (null: fewer than two, or a constant score). */
  correlation: number | null;
  /** Customers in the champion's top decile (its percentiles 91–100). */
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
 * The challenger's part of the ledger (`run --challenger DIR`, sql/011_challenger.sql): score_runs' kind
 * 'challenger' and champion_run_id, and the comparison of the two runs' score tables. The feature builds it
 * from the session's ledger facade; the only code that writes those columns.
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
    await c.query(`UPDATE ${this.s}.score_runs SET params = params || jsonb_build_object('challenger', $2::jsonb) WHERE run_id = $1`, [
      championRunId,
      JSON.stringify(challenger),
    ]);
  }

  /** The challenger of a run, if it has one. */
  async challengerOf(c: pg.ClientBase, championRunId: string): Promise<ChallengerRun | undefined> {
    return this.ledger.siblingOf(c, championRunId);
  }

  /** The champion of a challenger run; undefined for any other run. */
  async championOf(c: pg.ClientBase, runId: string): Promise<string | undefined> {
    const { rows } = await c.query<{ champion: string | null }>(`SELECT champion_run_id::text AS champion FROM ${this.s}.score_runs WHERE run_id = $1`, [
      runId,
    ]);
    return rows[0]?.champion ?? undefined;
  }

  /**
   * A run's deciles' cut points (its percentiles 10, 20, …, 90): from its recorded percentile cut points
   * (score_cuts, the same figures as percentile_cont) when it has them, else computed (a dry run has none).
   */
  async decileCuts(c: pg.ClientBase, runId: string): Promise<number[]> {
    const { rows } = await c.query<{ cuts: number[] | null }>(
      `SELECT COALESCE((SELECT ARRAY[score_cuts[10], score_cuts[20], score_cuts[30], score_cuts[40], score_cuts[50], score_cuts[60], score_cuts[70], score_cuts[80], score_cuts[90]]
                          FROM ${this.s}.score_runs WHERE run_id = $1 AND cardinality(score_cuts) = 99),
                       (SELECT percentile_cont(ARRAY[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) WITHIN GROUP (ORDER BY score) FROM ${this.ledger.runTable(runId)})) AS cuts`,
      [runId],
    );
    return rows[0]?.cuts ?? [];
  }

  /**
   * One pass over the two runs' tables joined on the customers both scored (a hash join and one
   * aggregate: no sort): Pearson's r (`corr`); the customers in each of the champion's deciles, by the
   * champion's score and by the challenger's (the PSI's bins); the customers in each run's own top decile
   * (percentile 91–100 of its scores, as customer_scores would show them) and in both; and, with bands,
   * the customers whose band differs (each score banded by its own run's bounds).
   */
  async compare(
    c: pg.ClientBase,
    championRunId: string,
    challengerRunId: string,
    cuts: { champion: number[]; challenger: number[] },
    bands: { champion: number[]; challenger: number[] } | undefined,
  ): Promise<ScoreComparisonRows> {
    const a = this.ledger.runTable(championRunId);
    const b = this.ledger.runTable(challengerRunId);
    // Ten counts per side in the one aggregate: the SQL is built from constants only.
    const perDecile = (col: 'a' | 'b') =>
      `ARRAY[${Array.from({ length: 10 }, (_, g) => `count(*) FILTER (WHERE width_bucket(${col}, $1::float8[]) = ${g})`).join(', ')}]::text[]`;
    const { rows } = await c.query<{
      both: string;
      r: number | null;
      top: string;
      overlap: string;
      a_deciles: string[];
      b_deciles: string[];
      band_changes: string | null;
    }>(
      `SELECT count(*) AS both, corr(a, b) AS r,
              count(*) FILTER (WHERE a >= ($1::float8[])[9]) AS top, count(*) FILTER (WHERE a >= ($1::float8[])[9] AND b >= ($2::float8[])[9]) AS overlap,
              ${perDecile('a')} AS a_deciles, ${perDecile('b')} AS b_deciles,
              CASE WHEN $3::float8[] IS NULL THEN NULL ELSE count(*) FILTER (WHERE width_bucket(a, $3::float8[]) <> width_bucket(b, $4::float8[])) END AS band_changes
         FROM (SELECT a.score::float8 AS a, b.score::float8 AS b FROM ${a} a JOIN ${b} b USING (customer_id)) j`,
      [cuts.champion, cuts.challenger, bands?.champion ?? null, bands?.challenger ?? null],
    );
    const r = rows[0]!;
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
