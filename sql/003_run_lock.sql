-- scorejob schema, version 3: the run lock (DESIGN.md guarantee 3) is a row only the job can write.
-- It replaces a session advisory lock: advisory locks need no privilege, so any role that can connect
-- (a downstream reader) could take the job's key and make every run exit 75. Taking, renewing or
-- row-locking a row here needs UPDATE on the table (SELECT ... FOR UPDATE/SHARE does too, and LOCK
-- TABLE needs a privilege as well): only the job's role, which owns it. sql/roles.sql grants readers
-- nothing on it.
--
-- The holder renews a lease with a heartbeat every few seconds, on a connection of its own whose
-- backend is recorded. The lock is free when it was released (token NULL), when the lease expired
-- (a hung process), or when the holder's backend is gone and its heartbeat is older than a short grace
-- (a killed process; a live one reconnects and re-registers within the grace). See src/run/lock.ts.
CREATE TABLE :SCHEMA.run_locks (
  -- What is locked. 'run' (one writer per schema) for now; a later change can lock per model.
  name           text PRIMARY KEY,
  -- The holder's id (random, per process and acquisition); NULL: free.
  token          uuid,
  -- The run the holder works on, once it has one (markDeadRuns spares the runs of live holders).
  run_id         bigint,
  -- run, resume or publish: what the holder is doing, for the "who holds it" message.
  purpose        text,
  host           text,
  pid            integer,
  -- The backend of the holder's lock connection; backend_start tells a reused pid apart.
  backend_pid    integer,
  backend_start  timestamptz,
  acquired_at    timestamptz,
  heartbeat_at   timestamptz,
  lease_until    timestamptz
);
REVOKE ALL ON :SCHEMA.run_locks FROM PUBLIC;
