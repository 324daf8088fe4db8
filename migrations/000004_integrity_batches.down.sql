-- Back to 000002's layout: a row per leaf, the leaf index on each sealed key.
CREATE TABLE audit_log_leaves_rows (
    leaf_index      bigint      PRIMARY KEY CHECK (leaf_index >= 0),
    event_id        uuid        NOT NULL,
    event_timestamp timestamptz NOT NULL,
    retention_days  integer     NOT NULL,
    event_hash      bytea       NOT NULL CHECK (length(event_hash) = 32),
    hash_version    smallint    NOT NULL,
    sealed_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_log_leaves_rows SELECT * FROM audit_log_leaves;

ALTER TABLE audit_event_keys ADD COLUMN leaf_index bigint;
UPDATE audit_event_keys k SET leaf_index = l.leaf_index
FROM audit_log_leaves_rows l
WHERE l.event_id = k.event_id AND l.event_timestamp = k.event_timestamp AND l.retention_days = k.retention_days;
-- A key whose event was never stored (its insert met a row already there) counts as done
-- once a seal has seen it.
UPDATE audit_event_keys SET leaf_index = -1
WHERE leaf_index IS NULL AND (xid IS NULL OR EXISTS (
    SELECT 1 FROM audit_log_batches b
    WHERE b.after_xid IS NULL AND pg_visible_in_snapshot(audit_event_keys.xid, b.snapshot)));
DROP VIEW audit_log_leaves;
ALTER TABLE audit_log_leaves_rows RENAME TO audit_log_leaves;
ALTER INDEX audit_log_leaves_rows_pkey RENAME TO audit_log_leaves_pkey;
CREATE UNIQUE INDEX audit_log_leaves_event_idx ON audit_log_leaves (event_id, event_timestamp, retention_days);
DROP INDEX audit_event_keys_xid_idx;
ALTER TABLE audit_event_keys DROP COLUMN xid;
CREATE INDEX audit_event_keys_unsealed_idx ON audit_event_keys (first_seen, event_id) WHERE leaf_index IS NULL;
DROP TABLE audit_log_batches;

DO $$
DECLARE
    t text := 'audit_log_leaves';
BEGIN
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION audit_log_guard()', t || '_append_only', t);
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard()', t || '_no_truncate', t);
    EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_append_only');
    EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_no_truncate');
    EXECUTE format('ALTER TABLE %I OWNER TO auditstore_owner', t);
    EXECUTE format('GRANT SELECT ON %I TO auditstore_reader', t);
END
$$;
