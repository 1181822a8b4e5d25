-- Shared runs (issue 17): a chunk's attempts are counted across workers against --chunk-attempts, but
-- only those since the coordinator (re)started the run: a resume gives every unfinished chunk its
-- attempts again, while `attempts` keeps counting every attempt of the run's life (runs show).
ALTER TABLE :SCHEMA.score_chunks
  ADD COLUMN attempts_at_start integer NOT NULL DEFAULT 0;
