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

-- Months made from now on get the same sample (CREATE TABLE ... LIKE does not copy it): the
-- function that makes them is wrapped, the one of migration 000001 kept as it is.
ALTER FUNCTION audit_create_partitions(date, date, integer[]) RENAME TO audit_create_partitions_v1;

CREATE FUNCTION audit_create_partitions(p_from date, p_to date, p_classes integer[] DEFAULT NULL)
RETURNS SETOF text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    made text;
BEGIN
    FOR made IN SELECT * FROM audit_create_partitions_v1(p_from, p_to, p_classes) LOOP
        IF made ~ '_[0-9]{4}_[0-9]{2}$' THEN -- a month, not a class parent
            EXECUTE format('ALTER TABLE %I ALTER COLUMN event_data SET STATISTICS 500', made);
        END IF;
        RETURN NEXT made;
    END LOOP;
END
$$;
ALTER FUNCTION audit_create_partitions(date, date, integer[]) OWNER TO auditstore_owner;
REVOKE ALL ON FUNCTION audit_create_partitions(date, date, integer[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_create_partitions(date, date, integer[]) TO auditstore_writer, auditstore_maintainer;
REVOKE ALL ON FUNCTION audit_create_partitions_v1(date, date, integer[]) FROM auditstore_writer, auditstore_maintainer;
