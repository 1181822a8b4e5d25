-- scorejob schema, version 16: a run a publish gate stopped waits for a person; a due tick (--if-due,
-- `schedule`, the Kubernetes CronJob) does not retry it, and says so once: the first tick that finds it
-- stamps waiting_announced_at (and writes the line cron mails); later ticks of the period only log it.
ALTER TABLE :SCHEMA.score_runs ADD COLUMN waiting_announced_at timestamptz;
