-- Roles are cluster-wide and may serve other databases, so they stay.
DROP TABLE IF EXISTS audit_events CASCADE;
DROP TABLE IF EXISTS audit_event_keys;
DROP TABLE IF EXISTS audit_legal_holds;
DROP TABLE IF EXISTS audit_retention_policies;
DROP FUNCTION IF EXISTS audit_create_partitions(date, date, integer[]);
DROP FUNCTION IF EXISTS audit_partition_name(integer, date);
DROP FUNCTION IF EXISTS audit_events_guard();
DROP FUNCTION IF EXISTS audit_event_held(jsonb);
