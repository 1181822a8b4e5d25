import { quoteIdent } from '../db/sql.js';

/**
 * The names of the schema's tables and of a run's own tables, quoted: the one place the schema's name
 * enters the ledger's SQL. The ledger's parts take this, not the
 * whole Ledger, which builds them.
 */
export class RunTables {
  /** The schema, quoted. */
  protected readonly schemaSql: string;

  constructor(readonly schema: string) {
    this.schemaSql = quoteIdent(schema);
  }

  /** `name` (a table of the schema), qualified and quoted. */
  protected table(name: string): string {
    return `${this.schemaSql}.${name}`;
  }

  /** The table a run writes its scores into before it is published (attached to score_data). */
  runTable(runId: string): string {
    return this.table(`"score_data_${BigInt(runId).toString()}"`);
  }

  /**
   * A subquery (with alias `s`) of the run's scores, `customer_id, score`: its own table and, for a
   * layered only_new run (`underRunId`, see OnlyNewLedger.layerOf), the scores it carries in the table
   * of the run below it, minus those it hides (sql/013_layers.sql; the views read them the same way).
   * Names the tables themselves, not score_data: reading the parent would lock every run's table.
   */
  runScores(runId: string, underRunId?: string): string {
    if (underRunId === undefined) return `${this.runTable(runId)} s`;
    return `(SELECT d.customer_id, d.score FROM ${this.runTable(runId)} d
             UNION ALL
             SELECT b.customer_id, b.score FROM ${this.runTable(underRunId)} b
              WHERE NOT EXISTS (SELECT 1 FROM ${this.table('score_layer_hidden')} h WHERE h.run_id = ${BigInt(runId).toString()} AND h.customer_id = b.customer_id)) s`;
  }
}
