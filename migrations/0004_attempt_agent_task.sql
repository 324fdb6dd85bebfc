-- The agent's A2A task of a step attempt, stored as soon as the agent accepted
-- it (before it ends), so that a process resuming the run after a crash asks
-- the agent for that task instead of sending the step again.
ALTER TABLE step_attempts ADD COLUMN task_id TEXT;          -- the agent's task id
ALTER TABLE step_attempts ADD COLUMN task_agent TEXT;       -- the name of the agent that accepted it
ALTER TABLE step_attempts ADD COLUMN task_interface TEXT;   -- JSON {url, version, binding}: where the task lives
ALTER TABLE step_attempts ADD COLUMN idempotency_key TEXT;  -- the key the task was sent with
-- The attempt number of the interrupted attempt whose task this attempt took
-- over (reattached) instead of sending the step again; NULL otherwise.
ALTER TABLE step_attempts ADD COLUMN reattached_from INTEGER;
