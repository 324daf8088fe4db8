CREATE OR REPLACE FUNCTION audit_events_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'audit events are immutable: UPDATE of event % refused', OLD.event_id
            USING ERRCODE = 'AS001';
    ELSIF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'audit events are immutable: TRUNCATE of % refused', TG_TABLE_NAME
            USING ERRCODE = 'AS001';
    END IF;
    -- DELETE
    IF OLD.event_timestamp + make_interval(days => OLD.retention_days) > now() THEN
        RAISE EXCEPTION 'audit event % is retained until %: DELETE refused', OLD.event_id,
            OLD.event_timestamp + make_interval(days => OLD.retention_days)
            USING ERRCODE = 'AS001';
    END IF;
    IF audit_event_held(to_jsonb(OLD)) THEN
        RAISE EXCEPTION 'audit event % is under legal hold: DELETE refused', OLD.event_id
            USING ERRCODE = 'AS001';
    END IF;
    RETURN OLD;
END
$$;
DROP TABLE audit_erasures;
ALTER TABLE audit_events DROP COLUMN hash_members, DROP COLUMN hash_salt;
