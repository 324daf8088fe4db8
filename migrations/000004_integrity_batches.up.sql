-- Cheaper sealing. 000002 sealed an event with a row of audit_log_leaves (heap and two index
-- entries) and an UPDATE of its idempotency key (a new key tuple, index entries, vacuum work):
-- more database work per event than writing the event. Now a seal writes one row for the whole
-- run of leaves it appends, and finds the new keys by transaction visibility instead of a mark.

-- The transaction that wrote the key. A seal records the snapshot it ran to; the next one
-- takes exactly the keys visible to its own snapshot and not to that one, so a transaction
-- that commits late is sealed by the next seal, never skipped, and a key is never updated.
-- Keys sealed under 000002 keep xid NULL; those not sealed yet get this migration's xid, which
-- no recorded snapshot sees (see audit_log_batches.snapshot).
ALTER TABLE audit_event_keys ADD COLUMN xid xid8;
UPDATE audit_event_keys SET xid = pg_current_xact_id() WHERE leaf_index IS NULL;
ALTER TABLE audit_event_keys ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
DROP INDEX audit_event_keys_unsealed_idx;
-- Appended at its right edge (xids grow), so cheaper to the write path than the index it
-- replaces.
CREATE INDEX audit_event_keys_xid_idx ON audit_event_keys (xid, event_id);

-- One seal's run of leaves, from first_leaf on. leaves packs each leaf as event_id (16 bytes),
-- event_timestamp (int64 microseconds since the Unix epoch), retention_days (int32) and
-- event_hash (32 bytes), big endian: 60 bytes a leaf, the records of an archive's leaves.bin.
-- Stored uncompressed (hashes do not compress), so a proof reads only the slice it needs.
CREATE TABLE audit_log_batches (
    -- Batches in the order they were sealed. A batch may hold no leaf: its keys were all
    -- already sealed, or their events never stored, and the round still moved on.
    seal_no       bigint      PRIMARY KEY CHECK (seal_no >= 0),
    first_leaf    bigint      NOT NULL CHECK (first_leaf >= 0),
    leaf_count    integer     NOT NULL CHECK (leaf_count >= 0),
    hash_version  smallint    NOT NULL,
    sealed_at     timestamptz NOT NULL DEFAULT now(),
    -- The batch sealed the keys visible to snapshot and not to prev_snapshot, in (xid,
    -- event_id) order up to and including (after_xid, after_id) when those are set: a round
    -- larger than one batch goes on in the next. '1:1:' sees no transaction.
    snapshot      pg_snapshot NOT NULL,
    prev_snapshot pg_snapshot NOT NULL,
    after_xid     xid8,
    after_id      uuid,
    -- The partitions (r<class>_<yyyy>_<mm>) the leaves' events belong to, so an archive finds
    -- its log range without reading every leaf.
    partitions    text[]      NOT NULL,
    -- The seconds (the first 48 bits of an id, divided by 1000) of the leaves' event ids: a
    -- UUIDv7 begins with its Unix time in milliseconds, so a batch lists a few, and a proof by
    -- event id finds its batch through this index instead of an index entry per event, which
    -- cost sealing more than all the rest. Any other id works too, one entry each.
    id_seconds    bigint[]    NOT NULL,
    leaves        bytea       NOT NULL CHECK (length(leaves) = leaf_count * 60),
    CHECK ((after_xid IS NULL) = (after_id IS NULL))
);
ALTER TABLE audit_log_batches ALTER COLUMN leaves SET STORAGE EXTERNAL;
CREATE UNIQUE INDEX audit_log_batches_leaf_idx ON audit_log_batches (first_leaf) WHERE leaf_count > 0;
CREATE INDEX audit_log_batches_id_idx ON audit_log_batches USING gin (id_seconds);

-- The leaves sealed under 000002, one batch per checkpoint interval (each was one seal).
INSERT INTO audit_log_batches (seal_no, first_leaf, leaf_count, hash_version, sealed_at, snapshot, prev_snapshot, partitions, id_seconds, leaves)
SELECT row_number() OVER (ORDER BY first_leaf) - 1, first_leaf, count(*), min(hash_version), min(sealed_at), '1:1:', '1:1:',
       array_agg(DISTINCT format('r%s_%s', retention_days, to_char(event_timestamp AT TIME ZONE 'UTC', 'YYYY_MM'))),
       array_agg(DISTINCT ('x' || encode(substring(uuid_send(event_id) FOR 6), 'hex'))::bit(48)::bigint / 1000),
       string_agg(uuid_send(event_id) || int8send((extract(epoch FROM event_timestamp) * 1000000)::bigint)
                  || int4send(retention_days) || event_hash, ''::bytea ORDER BY leaf_index)
FROM (SELECT l.*, coalesce((SELECT max(c.tree_size) FROM audit_checkpoints c WHERE c.tree_size <= l.leaf_index), 0) AS first_leaf
      FROM audit_log_leaves l) l
GROUP BY first_leaf;
ALTER TABLE audit_event_keys DROP COLUMN leaf_index;
DROP TABLE audit_log_leaves;

-- The leaves one by one, for verification and archives (they read whole runs; proofs read
-- slices of audit_log_batches). The batch is detoasted once, not once per leaf, and the final
-- OFFSET 0 keeps a query from inlining the view: its columns are computed here, else a join
-- would carry the whole batch along with every leaf.
CREATE VIEW audit_log_leaves AS
SELECT b.first_leaf + i AS leaf_index,
       encode(substring(d.v FROM i * 60 + 1 FOR 16), 'hex')::uuid AS event_id,
       timestamptz 'epoch' + ('x' || encode(substring(d.v FROM i * 60 + 17 FOR 8), 'hex'))::bit(64)::bigint * interval '1 microsecond' AS event_timestamp,
       ('x' || encode(substring(d.v FROM i * 60 + 25 FOR 4), 'hex'))::bit(32)::integer AS retention_days,
       substring(d.v FROM i * 60 + 29 FOR 32) AS event_hash,
       b.hash_version,
       b.sealed_at
FROM audit_log_batches b
CROSS JOIN LATERAL (SELECT b.leaves || ''::bytea AS v OFFSET 0) d
CROSS JOIN LATERAL generate_series(0, b.leaf_count - 1) i
OFFSET 0;

-- Append-only like the rest of the log, also for its owner under session_replication_role =
-- replica.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_log_batches'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION audit_log_guard()', t || '_append_only', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard()', t || '_no_truncate', t);
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_append_only');
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_no_truncate');
        EXECUTE format('ALTER TABLE %I OWNER TO auditstore_owner', t);
        EXECUTE format('GRANT SELECT ON %I TO auditstore_reader', t);
    END LOOP;
END
$$;
ALTER VIEW audit_log_leaves OWNER TO auditstore_owner;
GRANT SELECT ON audit_log_leaves TO auditstore_reader;
