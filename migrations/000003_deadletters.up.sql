-- Dead-lettered deliveries. When the broker gives up delivering an event to auditstore (the
-- write function refused it, or could not be reached, through every retry), it sends the
-- event to the dead-letter sink: the write function's POST /api/v1/deadletter, which stores it
-- here whatever it holds, so no audit event is dropped by the platform without a trace.
-- Operators list them, fix the cause, and replay them through the normal write path.
CREATE TABLE audit_deadletters (
    deadletter_id uuid        PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    -- The principal that delivered it (the broker's identity).
    submitted_by  text COLLATE "C" NOT NULL CHECK (char_length(submitted_by) BETWEEN 1 AND 255),
    -- Attributes of the CloudEvent, for filtering; NULL when the delivery was no CloudEvent.
    ce_id         text,
    ce_source     text,
    ce_type       text COLLATE "C",
    -- Knative's extensions: knativeerrorcode (the HTTP status of the last failed attempt),
    -- knativeerrordest (where delivery failed), knativeerrordata (the response body, decoded
    -- from base64 when it was text).
    error_code    integer,
    error_dest    text,
    error_data    text,
    -- The CloudEvent whole, in JSON (structured) form, every extension included.
    event         jsonb,
    -- A delivery that could not be read as a CloudEvent is kept as it came: its Content-Type
    -- and Ce-* headers (name to value), its body, and why it could not be read.
    content_type  text,
    headers       jsonb,
    body          bytea,
    parse_error   text,
    -- Set once, by a replay that stored the event.
    replayed_at   timestamptz,
    replayed_by   text,
    CONSTRAINT audit_deadletters_kept CHECK (event IS NOT NULL OR body IS NOT NULL),
    CONSTRAINT audit_deadletters_event_object CHECK (event IS NULL OR jsonb_typeof(event) = 'object'),
    CONSTRAINT audit_deadletters_replay CHECK ((replayed_at IS NULL) = (replayed_by IS NULL))
);
CREATE INDEX audit_deadletters_received_idx ON audit_deadletters (received_at);
CREATE INDEX audit_deadletters_pending_idx ON audit_deadletters (received_at) WHERE replayed_at IS NULL;

-- A dead letter is evidence: only its replay may be recorded, once, and it is never deleted
-- while it waits for one.
CREATE FUNCTION audit_deadletters_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.replayed_at IS NULL THEN
            RAISE EXCEPTION 'dead letter % has not been replayed: DELETE refused', OLD.deadletter_id
                USING ERRCODE = 'AS001';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.replayed_at IS NOT NULL THEN
        RAISE EXCEPTION 'dead letter % was already replayed at %', OLD.deadletter_id, OLD.replayed_at
            USING ERRCODE = 'AS001';
    END IF;
    IF (NEW.deadletter_id, NEW.received_at, NEW.submitted_by, NEW.ce_id, NEW.ce_source, NEW.ce_type,
        NEW.error_code, NEW.error_dest, NEW.error_data, NEW.event, NEW.content_type, NEW.headers, NEW.body, NEW.parse_error)
       IS DISTINCT FROM
       (OLD.deadletter_id, OLD.received_at, OLD.submitted_by, OLD.ce_id, OLD.ce_source, OLD.ce_type,
        OLD.error_code, OLD.error_dest, OLD.error_data, OLD.event, OLD.content_type, OLD.headers, OLD.body, OLD.parse_error) THEN
        RAISE EXCEPTION 'dead letter %: only its replay may be recorded', OLD.deadletter_id
            USING ERRCODE = 'AS001';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_deadletters_immutable BEFORE UPDATE OR DELETE ON audit_deadletters
    FOR EACH ROW EXECUTE FUNCTION audit_deadletters_guard();
ALTER TABLE audit_deadletters ENABLE ALWAYS TRIGGER audit_deadletters_immutable;

-- The write function stores dead letters, lists them and records replays (administrators'
-- requests); readers may look; the maintainer acts as the owner.
ALTER TABLE audit_deadletters OWNER TO auditstore_owner;
ALTER FUNCTION audit_deadletters_guard() OWNER TO auditstore_owner;
GRANT SELECT, INSERT ON audit_deadletters TO auditstore_writer;
GRANT UPDATE (replayed_at, replayed_by) ON audit_deadletters TO auditstore_writer;
GRANT SELECT ON audit_deadletters TO auditstore_reader;
