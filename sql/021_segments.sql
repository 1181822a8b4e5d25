-- scorejob schema, version 21: per-segment drift (docs/models.md "Segments"). For each column of the
-- manifest's `segments`, each chunk counts, per value of the column, the rows scored and rejected, the sum
-- of their scores, their scores in the ten bins the run's PSI uses and in the manifest's bands, and stores
-- the counts in the chunk's transaction (so every worker's chunks of a shared run count, and a resume keeps
-- the done chunks' counts); at statistics time the counts are merged and each segment's figures stored per run.
CREATE TABLE :SCHEMA.chunk_segment_counts (
  run_id    bigint NOT NULL REFERENCES :SCHEMA.score_runs (run_id) ON DELETE CASCADE,
  chunk_no  integer NOT NULL,
  -- Every segment's figures one after the other, in the order of the run's params (segments.columns).
  counts    float8[] NOT NULL,
  PRIMARY KEY (run_id, chunk_no)
);
COMMENT ON TABLE :SCHEMA.chunk_segment_counts IS 'Per chunk: each segment''s rows, rejects, score sum, score bins and bands (merged into run_segments).';

CREATE TABLE :SCHEMA.run_segments (
  run_id           bigint NOT NULL REFERENCES :SCHEMA.score_runs (run_id) ON DELETE CASCADE,
  -- The source column (manifest `segments`) and the segment's value as text; value_kind 'null' holds the
  -- rows where the column is NULL, 'other' the values not known when the run started (value NULL for both).
  segment          text NOT NULL,
  value_no         integer NOT NULL,
  value            text,
  value_kind       text NOT NULL CHECK (value_kind IN ('value', 'null', 'other')),
  rows_scored      bigint NOT NULL,
  rows_rejected    bigint NOT NULL,
  -- The segment's rows read (scored and rejected) over every row the run read.
  share            float8 NOT NULL,
  mean_score       float8,
  -- Band name -> share of the segment's scored rows (manifest output.bands); NULL without bands.
  band_shares      jsonb,
  -- The segment's scores in the ten equal bins over [0, 1] the run's PSI uses: the next run compares with them.
  score_bins       int8[] NOT NULL,
  -- Against the same segment in the previous published run (the one readers saw when this run started).
  psi_previous     float8,
  previous_share   float8,
  previous_run_id  bigint,
  PRIMARY KEY (run_id, segment, value_no)
);
COMMENT ON TABLE :SCHEMA.run_segments IS 'Per run and segment: rows, rejects, mean score, band shares and the PSI of its scores against the previous published run (docs/models.md "Segments").';

CREATE VIEW :SCHEMA.segment_drift AS
SELECT s.run_id, r.model_name, r.model_version, r.status, r.published_at IS NOT NULL AS published,
       s.segment, s.value, s.value_kind, s.rows_scored, s.rows_rejected, s.share, s.previous_share,
       s.mean_score, s.band_shares, s.psi_previous, s.previous_run_id,
       rank() OVER (PARTITION BY s.run_id ORDER BY s.psi_previous DESC NULLS LAST) AS mover_rank
  FROM :SCHEMA.run_segments s
  JOIN :SCHEMA.score_runs r USING (run_id);
COMMENT ON VIEW :SCHEMA.segment_drift IS 'Per run and segment (a value of a manifest `segments` column): rows, rejects, share, mean score, band shares, PSI against the previous published run; mover_rank 1 = moved most. See docs/models.md "Segments".';
