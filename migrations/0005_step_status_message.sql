-- The latest status message of a step attempt's agent task (A2A status
-- updates, throttled by the engine), shown in the run view while it runs.
ALTER TABLE step_attempts ADD COLUMN status_message TEXT;
