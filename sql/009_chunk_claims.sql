-- Several workers share one run (issue 17): a chunk is claimed by one worker at a time, by a lease it
-- renews. claim_token is the claim's fence: a chunk commits only while the committing transaction finds
-- its own token on the chunk's row (locked FOR UPDATE), so a worker whose lease expired and was taken over
-- can never commit the chunk a second time. The claim columns stay after the chunk is done: they say
-- which worker (host, pid) did it; `attempts` counts every attempt, on whichever worker.
ALTER TABLE :SCHEMA.score_chunks
  ADD COLUMN claim_token uuid,
  ADD COLUMN claim_host  text,
  ADD COLUMN claim_pid   integer,
  ADD COLUMN claimed_at  timestamptz,
  ADD COLUMN lease_until timestamptz,
  -- A chunk that failed for good on some worker: the run fails for everyone (a resume clears it).
  ADD COLUMN failed      boolean NOT NULL DEFAULT false;

-- The claim query's scan: the pending chunks of one run.
CREATE INDEX score_chunks_pending_idx ON :SCHEMA.score_chunks (run_id, chunk_no) WHERE status = 'pending';
