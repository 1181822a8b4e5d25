-- scorejob schema, version 2: a run's table is attached to score_data when the run is planned, not when
-- it is published.
--
-- Why: a reader's statement is planned with the partitions it sees then, and executed with a newer
-- snapshot. When the attach and the pointer moved in one transaction, a statement planned just
-- before that commit and executed just after it found the new run in the pointer and no partition
-- for it: an empty customer_scores (seen in 274 of 5408 polls over 300 publishes). Attached at plan
-- time, the partition is in every plan long before the pointer can name it.
--
-- History must therefore show published runs only (an attached partition may now belong to a run in
-- progress, failed or interrupted), decided by the ledger in the same snapshot as the rows.

-- Readers wait for this transaction instead of deadlocking with it: a reader of the history locks the
-- view first and score_runs next, so this locks the view (and, through it, what it reads) first.
LOCK TABLE :SCHEMA.customer_score_history IN ACCESS EXCLUSIVE MODE;

-- When the run's table was attached: publish waits for reader transactions older than this.
ALTER TABLE :SCHEMA.score_runs ADD COLUMN scores_attached_at timestamptz;

CREATE OR REPLACE VIEW :SCHEMA.customer_score_history AS
SELECT d.run_id,
       d.customer_id,
       d.score,
       r.model_version,
       r.finished_at AS scored_at
FROM :SCHEMA.score_data d
JOIN :SCHEMA.score_runs r ON r.run_id = d.run_id
WHERE r.published_at IS NOT NULL;
