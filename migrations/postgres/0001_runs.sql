-- The PostgreSQL run database: the same tables and columns as the SQLite one
-- at its migration 7 (see ../0001_runs.sql onwards for what each column
-- means). Times are RFC 3339 UTC text and JSON is text, as there: a run reads
-- back byte for byte whichever backend stored it (jsonb would reorder keys).
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    workflow_ref TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    workflow_version TEXT NOT NULL,
    workflow_digest TEXT NOT NULL,
    workflow_source TEXT NOT NULL,
    workflow_yaml TEXT NOT NULL,
    status TEXT NOT NULL,
    current_step TEXT,
    input TEXT NOT NULL,
    context TEXT NOT NULL DEFAULT '{}',
    result TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT,
    executor_starts INTEGER NOT NULL DEFAULT 0,
    rerun_of TEXT,
    rerun_from TEXT
);
-- Also the queue: workers claim `in_progress` runs nobody executes, oldest first.
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_creation ON runs (created_at, id);

CREATE TABLE transitions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    from_status TEXT,
    to_status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX transitions_by_run ON transitions (run_id, id);

CREATE TABLE step_attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    inputs TEXT,
    output TEXT,
    error TEXT,
    agent TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    task_id TEXT,
    task_agent TEXT,
    task_interface TEXT,
    idempotency_key TEXT,
    reattached_from INTEGER,
    status_message TEXT,
    reused_from TEXT
);
CREATE INDEX step_attempts_by_run ON step_attempts (run_id, step_id, attempt);
CREATE INDEX step_attempts_in_order ON step_attempts (run_id, id);

CREATE TABLE run_leases (
    run_id TEXT PRIMARY KEY REFERENCES runs (id),
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    process_start BIGINT NOT NULL,
    boot_id TEXT NOT NULL,
    token TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    renewed_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
