-- Run and step events: what `GET /events` streams (and resumes from an
-- event id). Written by triggers, so every write of a transition or a step
-- attempt emits its event in the same transaction, whichever code path made
-- it. Rows are never deleted: `id` (max + 1, writes serialized) is the order
-- in which they were committed.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    type TEXT NOT NULL,                 -- run.created, run.<status>, step.<status>, step.message
    step_id TEXT,
    data TEXT NOT NULL,                 -- JSON: what changed
    at TEXT NOT NULL                    -- RFC 3339 UTC
);
CREATE INDEX events_by_run ON events (run_id, id);
CREATE INDEX events_by_workflow ON events (workflow_id, id);
-- `GET /workflows?workflow=`: one workflow's runs newest first.
CREATE INDEX runs_by_workflow ON runs (workflow_id, created_at, id);

CREATE TRIGGER transition_event AFTER INSERT ON transitions BEGIN
    INSERT INTO events (run_id, workflow_id, type, data, at)
    SELECT NEW.run_id, workflow_id,
           CASE WHEN NEW.from_status IS NULL THEN 'run.created' ELSE 'run.' || NEW.to_status END,
           json_object('from', NEW.from_status, 'to', NEW.to_status, 'trigger', NEW.trigger,
                       'actor', NEW.actor, 'metadata', json(NEW.metadata)),
           NEW.at
    FROM runs WHERE id = NEW.run_id;
END;

-- A step that ends within moments of its start is written once, whole
-- (see `runs::journal`): its `step.running` event comes with its end, so
-- every executed step has one.
CREATE TRIGGER attempt_event AFTER INSERT ON step_attempts BEGIN
    INSERT INTO events (run_id, workflow_id, type, step_id, data, at)
    SELECT NEW.run_id, workflow_id, 'step.running', NEW.step_id,
           json_object('attempt', NEW.attempt, 'status', 'running', 'agent', NEW.agent,
                       'error', NULL, 'status_message', NULL,
                       'started_at', NEW.started_at, 'ended_at', NULL),
           NEW.started_at
    FROM runs WHERE id = NEW.run_id
        AND NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.reused_from IS NULL
        AND (NEW.inputs IS NOT NULL OR NEW.agent IS NOT NULL);
    INSERT INTO events (run_id, workflow_id, type, step_id, data, at)
    SELECT NEW.run_id, workflow_id, 'step.' || NEW.status, NEW.step_id,
           json_object('attempt', NEW.attempt, 'status', NEW.status, 'agent', NEW.agent,
                       'error', NEW.error, 'status_message', NEW.status_message,
                       'started_at', NEW.started_at, 'ended_at', NEW.ended_at),
           COALESCE(NEW.ended_at, NEW.started_at)
    FROM runs WHERE id = NEW.run_id;
END;

CREATE TRIGGER attempt_status_event AFTER UPDATE OF status ON step_attempts
WHEN NEW.status IS NOT OLD.status BEGIN
    INSERT INTO events (run_id, workflow_id, type, step_id, data, at)
    SELECT NEW.run_id, workflow_id, 'step.' || NEW.status, NEW.step_id,
           json_object('attempt', NEW.attempt, 'status', NEW.status, 'agent', NEW.agent,
                       'error', NEW.error, 'status_message', NEW.status_message,
                       'started_at', NEW.started_at, 'ended_at', NEW.ended_at),
           COALESCE(NEW.ended_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    FROM runs WHERE id = NEW.run_id;
END;

-- An agent's status message while the step runs (the engine throttles them).
CREATE TRIGGER attempt_message_event AFTER UPDATE OF status_message ON step_attempts
WHEN NEW.status IS OLD.status AND NEW.status_message IS NOT OLD.status_message BEGIN
    INSERT INTO events (run_id, workflow_id, type, step_id, data, at)
    SELECT NEW.run_id, workflow_id, 'step.message', NEW.step_id,
           json_object('attempt', NEW.attempt, 'status', NEW.status,
                       'status_message', NEW.status_message),
           strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM runs WHERE id = NEW.run_id;
END;
