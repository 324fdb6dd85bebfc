-- Executions of a run that took its lease and never released it (counted
-- when the lease is taken, reset to 0 when an executor releases it, i.e. stops
-- without crashing). Two means the executor died twice on this run: the
-- service's start-up resume leaves it alone.
ALTER TABLE runs ADD COLUMN executor_starts INTEGER NOT NULL DEFAULT 0;
