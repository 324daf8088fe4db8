-- Readers query each partition of audit_events directly (store.QueryEvents plans every
-- partition on its own: over the partitioned table, one class with no match was read to its
-- end). A privilege on a partitioned table does not cover reading its partitions by name, so
-- the reader gets SELECT on every partition there is, and on every one made from now on:
-- partitions are made only by audit_create_partitions, which runs as auditstore_owner.
--
-- Each partition is then planned with its own statistics, and for a JSON containment those
-- come from a histogram of sampled event_data documents: with the default 100, a key in 2% of
-- a month's events was missing from the sample one time in nine and planned as rare (25,700
-- rows fetched and sorted instead of 4,600 read in time order), and a key in one sampled
-- document was taken for 1% of the month (a time-ordered scan of 1.4M rows for 19). 500
-- samples tell those apart, for about half a millisecond more planning per partition.
DO $$
DECLARE
    p regclass;
BEGIN
    FOR p IN SELECT relid FROM pg_partition_tree('audit_events') WHERE level > 0 LOOP
        EXECUTE format('GRANT SELECT ON %s TO auditstore_reader', p);
    END LOOP;
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE auditstore_owner IN SCHEMA %I GRANT SELECT ON TABLES TO auditstore_reader', current_schema());
END
$$;

-- Every existing partition (the setting recurses); ANALYZE, or autovacuum, samples anew.
ALTER TABLE audit_events ALTER COLUMN event_data SET STATISTICS 500;

-- audit_create_partitions makes every missing month from p_from to p_to (inclusive, any day of
-- the month) for each retention class (default: the classes that exist, else the default set)
-- and returns the names it created. It runs as the owner so writers can create a missing month
-- on demand without owning anything. Each partition is made with CREATE TABLE ... LIKE and then
-- ATTACH PARTITION, which takes SHARE UPDATE EXCLUSIVE on the parent instead of the ACCESS
-- EXCLUSIVE of CREATE TABLE ... PARTITION OF, so writers are not stalled; lock_timeout bounds
-- the wait, and an advisory lock per name serialises concurrent creators of the same partition.
-- A month gets the larger statistics sample of event_data (LIKE does not copy it).
CREATE OR REPLACE FUNCTION audit_create_partitions(p_from date, p_to date, p_classes integer[] DEFAULT NULL)
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
                    EXECUTE format('ALTER TABLE %I ALTER COLUMN event_data SET STATISTICS 500', leaf);
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
