-- Jobs and their queue become one record: a job's state is its place in the queue, workers
-- claim queued jobs directly, and the separate task table goes. A job left running without a
-- worker is settled as interrupted by the next replica's orphan sweep.
ALTER TABLE jobs ADD COLUMN exclusive boolean NOT NULL DEFAULT true;
DROP INDEX jobs_one_active_per_kind;
-- At most one queued or running exclusive job per kind, across every replica.
CREATE UNIQUE INDEX jobs_one_active_per_kind ON jobs (kind)
    WHERE exclusive AND state IN ('queued', 'running');
-- What workers claim from, oldest first.
CREATE INDEX jobs_queued ON jobs (kind, id) WHERE state = 'queued';
DROP TABLE tasks;
ALTER TABLE task_workers RENAME TO job_workers;
