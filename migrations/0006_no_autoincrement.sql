-- Step attempts and transitions without AUTOINCREMENT: it wrote the
-- `sqlite_sequence` row at every insert (a page per step). Rows are never
-- deleted, so `max(id) + 1` numbers them in the same order; ids are kept.
CREATE TABLE step_attempts_new (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,            -- 1, 2, ... per step of the run
    -- running | completed | failed | cancelled | interrupted | waiting | superseded
    status TEXT NOT NULL,
    inputs TEXT,                         -- JSON
    output TEXT,                         -- JSON: the step's outputs object
    error TEXT,
    agent TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    task_id TEXT,                        -- the agent's task id
    task_agent TEXT,                     -- the name of the agent that accepted it
    task_interface TEXT,                 -- JSON {url, version, binding}: where the task lives
    idempotency_key TEXT,                -- the key the task was sent with
    reattached_from INTEGER,             -- the interrupted attempt whose task this one took over
    status_message TEXT                  -- the latest status message of the agent's task
);
INSERT INTO step_attempts_new (id, run_id, step_id, attempt, status, inputs, output, error, agent, started_at, ended_at, task_id, task_agent, task_interface, idempotency_key, reattached_from, status_message)
    SELECT id, run_id, step_id, attempt, status, inputs, output, error, agent, started_at, ended_at, task_id, task_agent, task_interface, idempotency_key, reattached_from, status_message FROM step_attempts;
DROP TABLE step_attempts;
ALTER TABLE step_attempts_new RENAME TO step_attempts;
CREATE INDEX step_attempts_by_run ON step_attempts (run_id, step_id, attempt);

CREATE TABLE transitions_new (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    from_status TEXT,                    -- NULL for the run's creation
    to_status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}', -- JSON
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
INSERT INTO transitions_new (id, run_id, from_status, to_status, trigger, metadata, actor, at)
    SELECT id, run_id, from_status, to_status, trigger, metadata, actor, at FROM transitions;
DROP TABLE transitions;
ALTER TABLE transitions_new RENAME TO transitions;
CREATE INDEX transitions_by_run ON transitions (run_id, id);
DELETE FROM sqlite_sequence WHERE name IN ('step_attempts', 'transitions');
