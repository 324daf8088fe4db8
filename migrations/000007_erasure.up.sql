-- Erasure that keeps tamper evidence (README "Erasure"). An event hashed with version 2 commits
-- to each of its members through a salted digest; the salt key is stored beside it:
ALTER TABLE audit_events ADD COLUMN hash_salt bytea;
-- Once a member is erased, the key is gone and what the event keeps of its members takes its
-- place: every member's digest, and the salts of those still present (by JSON Pointer).
ALTER TABLE audit_events ADD COLUMN hash_members jsonb;

-- One row per erased event and erasure: who erased which members, and why.
CREATE TABLE audit_erasures (
    erasure_id      uuid        NOT NULL,
    event_id        uuid        NOT NULL,
    event_timestamp timestamptz NOT NULL,
    retention_days  integer     NOT NULL,
    members         text[]      NOT NULL CHECK (cardinality(members) > 0),
    reason          text        NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 1024),
    erased_by       text        NOT NULL,
    erased_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (erasure_id, event_id)
);
CREATE INDEX audit_erasures_event_idx ON audit_erasures (event_id);
-- Maintenance (auditstore_maintainer acts as the owner) erases; readers may see that it did.
ALTER TABLE audit_erasures OWNER TO auditstore_owner;
GRANT SELECT ON audit_erasures TO auditstore_reader;

-- The immutability guard lets exactly one UPDATE through: the erasure of a version 2 event
-- not under legal hold, in a transaction that said so (auditstore.erasing = the event's id,
-- set by the store's erasure), which changes nothing but the erased values, the salts and
-- the content hash (the hash of what the client sent, which would let an erased value be
-- guessed). Every other UPDATE is refused as before.
CREATE OR REPLACE FUNCTION audit_events_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF coalesce(current_setting('auditstore.erasing', true), '') <> OLD.event_id::text THEN
            RAISE EXCEPTION 'audit events are immutable: UPDATE of event % refused', OLD.event_id
                USING ERRCODE = 'AS001';
        END IF;
        IF OLD.hash_version IS DISTINCT FROM 2 THEN
            RAISE EXCEPTION 'audit event % is not hashed with version 2: erasure refused', OLD.event_id
                USING ERRCODE = 'AS001';
        END IF;
        IF (to_jsonb(NEW) - ARRAY['event_data', 'actor_id', 'actor_ip', 'content_hash', 'hash_salt', 'hash_members'])
           IS DISTINCT FROM (to_jsonb(OLD) - ARRAY['event_data', 'actor_id', 'actor_ip', 'content_hash', 'hash_salt', 'hash_members']) THEN
            RAISE EXCEPTION 'audit event %: an erasure changes only erased members', OLD.event_id
                USING ERRCODE = 'AS001';
        END IF;
        IF audit_event_held(to_jsonb(OLD)) THEN
            RAISE EXCEPTION 'audit event % is under legal hold: erasure refused', OLD.event_id
                USING ERRCODE = 'AS002';
        END IF;
        RETURN NEW;
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
