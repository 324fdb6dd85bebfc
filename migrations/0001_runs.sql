-- Durable runs: one row per run, every state transition, every step attempt.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,                 -- UUID
    workflow_ref TEXT NOT NULL,          -- what the user asked for (id, file, reference)
    workflow_id TEXT NOT NULL,
    workflow_version TEXT NOT NULL,      -- the resolved version
    workflow_digest TEXT NOT NULL,       -- sha256:HEX of workflow_yaml
    workflow_source TEXT NOT NULL,       -- file path or registry reference it was loaded from
    workflow_yaml TEXT NOT NULL,         -- the exact definition, so resuming needs no registry
    status TEXT NOT NULL,
    current_step TEXT,
    input TEXT NOT NULL,                 -- JSON
    context TEXT NOT NULL DEFAULT '{}',  -- JSON: step id -> outputs of completed steps
    result TEXT,                         -- JSON
    error TEXT,
    created_at TEXT NOT NULL,            -- RFC 3339 UTC
    updated_at TEXT NOT NULL,
    completed_at TEXT
);
CREATE INDEX runs_by_status ON runs (status, created_at);

CREATE TABLE transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (id),
    from_status TEXT,                    -- NULL for the run's creation
    to_status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}', -- JSON
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX transitions_by_run ON transitions (run_id, id);

CREATE TABLE step_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    ended_at TEXT
);
CREATE INDEX step_attempts_by_run ON step_attempts (run_id, step_id, attempt);
