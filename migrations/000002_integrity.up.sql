-- Tamper evidence (issue: shared/integrity). Every event carries the hash of its stored fields;
-- a sealer appends events, in an order it fixes, to an append-only Merkle log (RFC 9162) and
-- signs checkpoints of it. The log outlives the partitions: dropping an expired month leaves
-- its leaves, so a verifier can tell an expiry from a deletion.

-- Set by the write path (shared/ledger.Hash); NULL for rows written before this migration or
-- by a path that does not hash, which the sealer hashes from the stored row instead.
ALTER TABLE audit_events ADD COLUMN event_hash bytea, ADD COLUMN hash_version smallint;

-- The idempotency key doubles as the sealer's queue: it is written in the event's own
-- transaction, so an event is never visible without it, and the sealer finds unsealed events
-- through this small partial index instead of scanning partitions by received_at (which a
-- late commit could slip behind). Maintenance prunes only sealed keys.
-- The key also carries the event hash, so sealing reads the small key table and the log only,
-- never the partitions.
ALTER TABLE audit_event_keys ADD COLUMN leaf_index bigint, ADD COLUMN event_hash bytea;
CREATE INDEX audit_event_keys_unsealed_idx ON audit_event_keys (first_seen, event_id) WHERE leaf_index IS NULL;

-- Leaf i of the log: the event it seals and the event hash it commits to.
CREATE TABLE audit_log_leaves (
    leaf_index      bigint      PRIMARY KEY CHECK (leaf_index >= 0),
    event_id        uuid        NOT NULL,
    event_timestamp timestamptz NOT NULL,
    retention_days  integer     NOT NULL,
    event_hash      bytea       NOT NULL CHECK (length(event_hash) = 32),
    hash_version    smallint    NOT NULL,
    sealed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX audit_log_leaves_event_idx ON audit_log_leaves (event_id, event_timestamp, retention_days);

-- Perfect subtrees of the log at the levels the store keeps (see store.storedLevel), so a
-- proof reads O(log n) rows instead of every leaf.
CREATE TABLE audit_log_nodes (
    level      smallint NOT NULL,
    node_index bigint   NOT NULL,
    hash       bytea    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, node_index)
);

-- Signed checkpoints: the log's size and root at a time. signature is NULL when no signing key
-- was configured (the verifier reports such checkpoints as unsigned).
CREATE TABLE audit_checkpoints (
    tree_size  bigint      PRIMARY KEY CHECK (tree_size >= 0),
    root_hash  bytea       NOT NULL CHECK (length(root_hash) = 32),
    created_at timestamptz NOT NULL,
    key_id     text,
    signature  bytea
);

-- The log is append-only, also for its owner under session_replication_role = replica.
CREATE FUNCTION audit_log_guard() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'the integrity log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'AS001';
END
$$;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_log_leaves', 'audit_log_nodes', 'audit_checkpoints'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION audit_log_guard()', t || '_append_only', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard()', t || '_no_truncate', t);
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_append_only');
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_no_truncate');
        EXECUTE format('ALTER TABLE %I OWNER TO auditstore_owner', t);
        EXECUTE format('GRANT SELECT ON %I TO auditstore_reader', t);
    END LOOP;
END
$$;
