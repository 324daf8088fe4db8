-- auditstore schema, version 1.
--
-- Layout (see README "Storage"): audit_events is LIST-partitioned by retention class
-- (retention_days, already rounded up to a class by the writer), and every class parent is
-- RANGE-partitioned by calendar month (UTC) of event_timestamp:
--
--   audit_events                      LIST (retention_days)
--     audit_events_r90                  FOR VALUES IN (90)      RANGE (event_timestamp)
--       audit_events_r90_2026_11          2026-11-01 .. 2026-12-01 UTC
--     audit_events_r365 ...
--
-- Class first, month second, because retention drops whole leaves: every row of
-- audit_events_r90_2026_11 expires together, so a leaf can be detached CONCURRENTLY and
-- dropped without a single DELETE, and creating or dropping a month locks only that class
-- parent, never the root every writer goes through. There is no default partition (it would
-- forbid DETACH ... CONCURRENTLY and collect stray rows); a missing month is created on demand
-- by audit_create_partitions, which writers may call.

-- Roles are cluster-wide: create them once, tolerate a concurrent migration creating them too.
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['auditstore_owner', 'auditstore_maintainer', 'auditstore_writer', 'auditstore_reader'] LOOP
    BEGIN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END LOOP;
END
$$;
-- The maintainer does partition DDL (DETACH ... CONCURRENTLY needs ownership and cannot run
-- inside a function), so it acts as the owner role.
GRANT auditstore_owner TO auditstore_maintainer;

CREATE TABLE audit_events (
    event_id        uuid        NOT NULL,
    event_timestamp timestamptz NOT NULL,
    retention_days  integer     NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    duration_ms     bigint,
    is_sensitive    boolean     NOT NULL DEFAULT false,
    parent_event_id uuid,
    actor_ip        inet,
    version         text        NOT NULL DEFAULT '1.0',
    event_type      text COLLATE "C" NOT NULL,
    event_category  text COLLATE "C" NOT NULL,
    event_action    text COLLATE "C" NOT NULL,
    event_outcome   text COLLATE "C" NOT NULL,
    correlation_id  text COLLATE "C" NOT NULL,
    actor_type      text COLLATE "C" NOT NULL,
    actor_id        text COLLATE "C" NOT NULL,
    resource_type   text COLLATE "C",
    resource_id     text COLLATE "C",
    resource_name   text,
    trace_id        text,
    span_id         text,
    namespace       text COLLATE "C",
    cluster_id      text COLLATE "C",
    severity        text COLLATE "C",
    error_code      text,
    error_message   text,
    submitted_by    text COLLATE "C" NOT NULL,
    -- SHA-256 of the canonical form of what the client sent: tells a retry from a conflict
    -- even after the idempotency key has been pruned.
    content_hash    bytea       NOT NULL,
    event_data      jsonb       NOT NULL,

    -- A second line of defence behind the writer's validation (CONTRACT "Event").
    CONSTRAINT audit_events_version_len CHECK (char_length(version) BETWEEN 1 AND 32),
    CONSTRAINT audit_events_event_type_format CHECK (
        char_length(event_type) <= 100 AND event_type ~ '^[a-z0-9_-]+(\.[a-z0-9_-]+)+$'),
    CONSTRAINT audit_events_event_category_len CHECK (char_length(event_category) BETWEEN 1 AND 100),
    CONSTRAINT audit_events_event_action_len CHECK (char_length(event_action) BETWEEN 1 AND 100),
    CONSTRAINT audit_events_event_outcome_enum CHECK (
        event_outcome IN ('success', 'failure', 'pending', 'unknown')),
    CONSTRAINT audit_events_correlation_id_len CHECK (char_length(correlation_id) BETWEEN 1 AND 255),
    CONSTRAINT audit_events_actor_type_len CHECK (char_length(actor_type) BETWEEN 1 AND 100),
    CONSTRAINT audit_events_actor_id_len CHECK (char_length(actor_id) BETWEEN 1 AND 255),
    CONSTRAINT audit_events_resource_type_len CHECK (char_length(resource_type) <= 100),
    CONSTRAINT audit_events_resource_id_len CHECK (char_length(resource_id) <= 255),
    CONSTRAINT audit_events_resource_name_len CHECK (char_length(resource_name) <= 255),
    CONSTRAINT audit_events_trace_id_len CHECK (char_length(trace_id) <= 255),
    CONSTRAINT audit_events_span_id_len CHECK (char_length(span_id) <= 255),
    CONSTRAINT audit_events_namespace_len CHECK (char_length(namespace) <= 253),
    CONSTRAINT audit_events_cluster_id_len CHECK (char_length(cluster_id) <= 253),
    CONSTRAINT audit_events_severity_enum CHECK (
        severity IN ('debug', 'info', 'low', 'medium', 'warning', 'high', 'error', 'critical')),
    CONSTRAINT audit_events_duration_ms_range CHECK (duration_ms >= 0),
    CONSTRAINT audit_events_error_code_len CHECK (char_length(error_code) <= 100),
    CONSTRAINT audit_events_error_message_len CHECK (char_length(error_message) <= 4096),
    CONSTRAINT audit_events_retention_days_range CHECK (retention_days BETWEEN 90 AND 2557),
    CONSTRAINT audit_events_submitted_by_len CHECK (char_length(submitted_by) BETWEEN 1 AND 255),
    CONSTRAINT audit_events_content_hash_len CHECK (octet_length(content_hash) = 32),
    CONSTRAINT audit_events_event_data_object CHECK (jsonb_typeof(event_data) = 'object'),

    -- A key on a partitioned table must hold every partition key, so this alone cannot stop
    -- one event_id arriving with two timestamps: audit_event_keys does that (see below).
    CONSTRAINT audit_events_pkey PRIMARY KEY (event_id, event_timestamp, retention_days)
) PARTITION BY LIST (retention_days);

CREATE INDEX audit_events_correlation_idx ON audit_events (correlation_id, event_timestamp);
CREATE INDEX audit_events_event_type_idx ON audit_events (event_type, event_timestamp);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id, event_timestamp);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, event_timestamp);
CREATE INDEX audit_events_outcome_idx ON audit_events (event_outcome, event_timestamp);
CREATE INDEX audit_events_category_idx ON audit_events (event_category, event_timestamp);
CREATE INDEX audit_events_timestamp_idx ON audit_events (event_timestamp);
CREATE INDEX audit_events_event_data_idx ON audit_events USING gin (event_data jsonb_path_ops);

-- Idempotency keys. A key on audit_events cannot span partitions, so the writer first claims
-- the event_id here (INSERT ... ON CONFLICT DO NOTHING in the same statement) and stores the
-- event only when the claim is new. The row also says where the event lives (timestamp and
-- class), so a lookup by id prunes to one leaf, and carries the content hash that tells a
-- duplicate from a conflict. Maintenance prunes keys older than IDEMPOTENCY_WINDOW; after
-- that the primary key of audit_events still refuses an identical retry.
CREATE TABLE audit_event_keys (
    event_id        uuid        PRIMARY KEY,
    event_timestamp timestamptz NOT NULL,
    retention_days  integer     NOT NULL,
    content_hash    bytea       NOT NULL,
    first_seen      timestamptz NOT NULL DEFAULT now()
);
-- first_seen grows with insertion order, so a BRIN index serves pruning for almost nothing.
CREATE INDEX audit_event_keys_first_seen_idx ON audit_event_keys USING brin (first_seen);

-- Legal holds: a held event may not be deleted, whatever its retention. A hold names a
-- correlation_id and/or a filter that the event row (as JSON) must contain, optionally within
-- a time range.
CREATE TABLE audit_legal_holds (
    hold_id        uuid        PRIMARY KEY,
    correlation_id text COLLATE "C",
    filter         jsonb,
    since          timestamptz,
    until          timestamptz,
    reason         text        NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 1024),
    placed_by      text        NOT NULL,
    placed_at      timestamptz NOT NULL DEFAULT now(),
    released_at    timestamptz,
    released_by    text,
    release_reason text,
    CONSTRAINT audit_legal_holds_scope CHECK (correlation_id IS NOT NULL OR filter IS NOT NULL),
    CONSTRAINT audit_legal_holds_filter_object CHECK (filter IS NULL OR jsonb_typeof(filter) = 'object'),
    CONSTRAINT audit_legal_holds_release CHECK (
        (released_at IS NULL AND released_by IS NULL AND release_reason IS NULL)
        OR (released_at IS NOT NULL AND released_by IS NOT NULL AND release_reason IS NOT NULL))
);
CREATE INDEX audit_legal_holds_active_idx ON audit_legal_holds (correlation_id) WHERE released_at IS NULL;

-- Default retention per event_category; an event's own retention_days may only lengthen it.
CREATE TABLE audit_retention_policies (
    event_category text        PRIMARY KEY CHECK (char_length(event_category) BETWEEN 1 AND 100),
    retention_days integer     NOT NULL CHECK (retention_days BETWEEN 90 AND 2557),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- audit_event_held reports whether an active legal hold covers an event (given as the JSON of
-- its row). The delete guard and maintenance both use it, so they cannot disagree.
CREATE FUNCTION audit_event_held(p_event jsonb) RETURNS boolean
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    SELECT EXISTS (
        SELECT 1 FROM audit_legal_holds h
        WHERE h.released_at IS NULL
          AND (h.correlation_id IS NULL OR h.correlation_id = p_event->>'correlation_id')
          AND (h.filter IS NULL OR p_event @> h.filter)
          AND (h.since IS NULL OR (p_event->>'event_timestamp')::timestamptz >= h.since)
          AND (h.until IS NULL OR (p_event->>'event_timestamp')::timestamptz < h.until))
$$;

-- Immutability: no UPDATE ever; DELETE only of an expired, unheld row. Row triggers on the
-- root are cloned to every partition, also ones attached later, and ENABLE ALWAYS keeps them
-- firing under session_replication_role = replica.
CREATE FUNCTION audit_events_guard() RETURNS trigger
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

CREATE TRIGGER audit_events_immutable BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_guard();
-- Statement-level TRUNCATE triggers are not cloned to partitions: audit_create_partitions
-- adds one to every partition it makes.
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_guard();
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_immutable;
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_truncate;

-- audit_partition_name is the one place partition names are made: audit_events_r<class> for a
-- class parent, audit_events_r<class>_<yyyy>_<mm> for a month of it.
CREATE FUNCTION audit_partition_name(p_class integer, p_month date DEFAULT NULL) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT 'audit_events_r' || p_class || coalesce(to_char(p_month, '"_"YYYY"_"MM'), '')
$$;

-- audit_create_partitions makes every missing month from p_from to p_to (inclusive, any day of
-- the month) for each retention class (default: the classes that exist, else the default set)
-- and returns the names it created. It runs as the owner so writers can create a missing month
-- on demand without owning anything. Each partition is made with CREATE TABLE ... LIKE and then
-- ATTACH PARTITION, which takes SHARE UPDATE EXCLUSIVE on the parent instead of the ACCESS
-- EXCLUSIVE of CREATE TABLE ... PARTITION OF, so writers are not stalled; lock_timeout bounds
-- the wait, and an advisory lock per name serialises concurrent creators of the same partition.
CREATE FUNCTION audit_create_partitions(p_from date, p_to date, p_classes integer[] DEFAULT NULL)
RETURNS SETOF text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
SET timezone = 'UTC'
SET lock_timeout = '2s'
AS $$
DECLARE
    cls    integer;
    m      date;
    parent text;
    leaf   text;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_to < p_from THEN
        RAISE EXCEPTION 'audit_create_partitions: invalid month range % .. %', p_from, p_to
            USING ERRCODE = '22023';
    END IF;
    IF p_to > p_from + interval '120 months' THEN
        RAISE EXCEPTION 'audit_create_partitions: range % .. % spans more than 10 years', p_from, p_to
            USING ERRCODE = '22023';
    END IF;
    IF p_classes IS NULL THEN
        SELECT array_agg(substring(c.relname FROM '^audit_events_r([0-9]+)$')::integer)
          INTO p_classes
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit_events'::regclass;
        p_classes := coalesce(p_classes, ARRAY[90, 180, 365, 730, 1095, 1825, 2557]);
    END IF;

    FOREACH cls IN ARRAY p_classes LOOP
        IF cls IS NULL OR cls < 90 OR cls > 2557 THEN
            RAISE EXCEPTION 'audit_create_partitions: retention class % is not between 90 and 2557 days', cls
                USING ERRCODE = '22023';
        END IF;
        parent := audit_partition_name(cls);
        IF to_regclass(parent) IS NULL THEN
            PERFORM pg_advisory_xact_lock(hashtext('auditstore.partition:' || parent));
            -- Re-check in the catalog itself: to_regclass may answer from a cache that the
            -- advisory lock did not refresh.
            IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = parent AND relnamespace = current_schema()::regnamespace) THEN
                EXECUTE format('CREATE TABLE %I (LIKE audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES) PARTITION BY RANGE (event_timestamp)', parent);
                EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION audit_events_guard()', parent);
                EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER audit_events_no_truncate', parent);
                EXECUTE format('ALTER TABLE audit_events ATTACH PARTITION %I FOR VALUES IN (%s)', parent, cls);
                RETURN NEXT parent;
            END IF;
        END IF;

        m := date_trunc('month', p_from)::date;
        WHILE m <= p_to LOOP
            leaf := audit_partition_name(cls, m);
            IF to_regclass(leaf) IS NULL THEN
                PERFORM pg_advisory_xact_lock(hashtext('auditstore.partition:' || leaf));
                IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = leaf AND relnamespace = current_schema()::regnamespace) THEN
                    EXECUTE format('CREATE TABLE %I (LIKE audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)', leaf);
                    EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION audit_events_guard()', leaf);
                    EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER audit_events_no_truncate', leaf);
                    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                        parent, leaf, m::timestamptz, (m + interval '1 month')::date::timestamptz);
                    RETURN NEXT leaf;
                END IF;
            END IF;
            m := (m + interval '1 month')::date;
        END LOOP;
    END LOOP;
END
$$;

-- The owner creates partitions in this schema; the others only need to find them.
DO $$
BEGIN
    EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO auditstore_owner', current_schema());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO auditstore_writer, auditstore_reader', current_schema());
END
$$;

-- Ownership and rights. Writers insert and read (the read is needed to tell duplicates from
-- conflicts); they cannot UPDATE, DELETE, TRUNCATE or do DDL. Readers only read.
ALTER TABLE audit_events OWNER TO auditstore_owner;
ALTER TABLE audit_event_keys OWNER TO auditstore_owner;
ALTER TABLE audit_legal_holds OWNER TO auditstore_owner;
ALTER TABLE audit_retention_policies OWNER TO auditstore_owner;
ALTER FUNCTION audit_create_partitions(date, date, integer[]) OWNER TO auditstore_owner;
REVOKE ALL ON FUNCTION audit_create_partitions(date, date, integer[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_create_partitions(date, date, integer[]) TO auditstore_writer, auditstore_maintainer;

GRANT SELECT, INSERT ON audit_events TO auditstore_writer;
GRANT SELECT, INSERT, UPDATE ON audit_event_keys TO auditstore_writer;
GRANT SELECT ON audit_retention_policies, audit_legal_holds TO auditstore_writer;
GRANT SELECT ON audit_events, audit_event_keys, audit_legal_holds, audit_retention_policies TO auditstore_reader;

-- This month and the next three, for every default class.
SELECT audit_create_partitions(
    (now() AT TIME ZONE 'UTC')::date,
    ((now() AT TIME ZONE 'UTC') + interval '3 months')::date);
