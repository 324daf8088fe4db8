DROP FUNCTION audit_create_partitions(date, date, integer[]);
ALTER FUNCTION audit_create_partitions_v1(date, date, integer[]) RENAME TO audit_create_partitions;
GRANT EXECUTE ON FUNCTION audit_create_partitions(date, date, integer[]) TO auditstore_writer, auditstore_maintainer;

ALTER TABLE audit_events ALTER COLUMN event_data SET STATISTICS -1;

DO $$
DECLARE
    p regclass;
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE auditstore_owner IN SCHEMA %I REVOKE SELECT ON TABLES FROM auditstore_reader', current_schema());
    FOR p IN SELECT relid FROM pg_partition_tree('audit_events') WHERE level > 0 LOOP
        EXECUTE format('REVOKE SELECT ON %s FROM auditstore_reader', p);
    END LOOP;
END
$$;
