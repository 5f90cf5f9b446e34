-- Every router replica runs the background jobs (package jobs) when it
-- starts and then every period, each shard's run under an advisory lock.
-- The lock keeps two runs apart but not one after another: replicas whose
-- tickers have different phases each did the whole work every period, and
-- every replica started by a rolling deploy ran the lifecycle job again,
-- 13-15 s of PostgreSQL CPU at full scale (BENCHMARKS.md, "Cold statements
-- at full scale, and the restart spike").
--
-- dms.job_runs records, per database, each job's last run: its settings
-- (a hash of the job's statement and arguments, as package jobs builds it)
-- and when its transaction started. A periodic run finds a recent run with
-- the same settings and skips the shard; a run with other settings (a new
-- day for the lifecycle, a new configuration or binary) is never skipped.
-- Not regional: a region move neither copies nor needs it.

-- +goose Up
CREATE TABLE dms.job_runs (
    job      text PRIMARY KEY,
    settings text NOT NULL,
    ran_at   timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON dms.job_runs TO dms_app;

-- +goose Down
DROP TABLE dms.job_runs;
