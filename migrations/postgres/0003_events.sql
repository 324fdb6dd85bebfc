-- Run and step events, as in ../0009_events.sql, written by triggers in the
-- transaction that made the change. Identity values are taken before commit,
-- so here they are not the commit order: each row also records its
-- transaction id, and readers take only rows of transactions older than the
-- oldest one still running, ordered by (xid, id), an order no later commit
-- can insert into.
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    run_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    type TEXT NOT NULL,
    step_id TEXT,
    data TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX events_in_order ON events (xid, id);
CREATE INDEX events_by_run ON events (run_id, xid, id);
CREATE INDEX events_by_workflow ON events (workflow_id, xid, id);
-- `GET /workflows?workflow=`: one workflow's runs newest first.
CREATE INDEX runs_by_workflow ON runs (workflow_id, created_at, id);

CREATE FUNCTION pallet_now() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

CREATE FUNCTION pallet_transition_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (run_id, workflow_id, type, data, at)
    SELECT NEW.run_id, workflow_id,
           CASE WHEN NEW.from_status IS NULL THEN 'run.created' ELSE 'run.' || NEW.to_status END,
           json_build_object('from', NEW.from_status, 'to', NEW.to_status, 'trigger', NEW.trigger,
                             'actor', NEW.actor, 'metadata', NEW.metadata::json)::text,
           NEW.at
    FROM runs WHERE id = NEW.run_id;
    RETURN NULL;
END $$;

CREATE FUNCTION pallet_attempt_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text;
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        kind := 'step.' || NEW.status;
    ELSIF NEW.status_message IS DISTINCT FROM OLD.status_message THEN
        kind := 'step.message';
    ELSE
        RETURN NULL;
    END IF;
    -- A step written once, whole, at its end (see ../0009_events.sql).
    IF TG_OP = 'INSERT' AND NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.reused_from IS NULL
        AND (NEW.inputs IS NOT NULL OR NEW.agent IS NOT NULL) THEN
        INSERT INTO events (run_id, workflow_id, type, step_id, data, at)
        SELECT NEW.run_id, workflow_id, 'step.running', NEW.step_id,
               json_build_object('attempt', NEW.attempt, 'status', 'running', 'agent', NEW.agent,
                                 'error', NULL, 'status_message', NULL,
                                 'started_at', NEW.started_at, 'ended_at', NULL)::text,
               NEW.started_at
        FROM runs WHERE id = NEW.run_id;
    END IF;
    INSERT INTO events (run_id, workflow_id, type, step_id, data, at)
    SELECT NEW.run_id, workflow_id, kind, NEW.step_id,
           CASE WHEN kind = 'step.message'
                THEN json_build_object('attempt', NEW.attempt, 'status', NEW.status,
                                       'status_message', NEW.status_message)
                ELSE json_build_object('attempt', NEW.attempt, 'status', NEW.status, 'agent', NEW.agent,
                                       'error', NEW.error, 'status_message', NEW.status_message,
                                       'started_at', NEW.started_at, 'ended_at', NEW.ended_at)
           END::text,
           CASE WHEN kind = 'step.message' THEN pallet_now()
                ELSE COALESCE(NEW.ended_at, CASE WHEN TG_OP = 'INSERT' THEN NEW.started_at END, pallet_now())
           END
    FROM runs WHERE id = NEW.run_id;
    RETURN NULL;
END $$;

CREATE TRIGGER transition_event AFTER INSERT ON transitions
    FOR EACH ROW EXECUTE FUNCTION pallet_transition_event();
CREATE TRIGGER attempt_event AFTER INSERT OR UPDATE OF status, status_message ON step_attempts
    FOR EACH ROW EXECUTE FUNCTION pallet_attempt_event();
