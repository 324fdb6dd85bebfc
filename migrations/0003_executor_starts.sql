-- Executions of a run that started and have not ended normally (reset to 0
-- when an execution records where it stopped). Two means the executor died
-- twice on this run: the service's start-up resume leaves it alone.
ALTER TABLE runs ADD COLUMN executor_starts INTEGER NOT NULL DEFAULT 0;
