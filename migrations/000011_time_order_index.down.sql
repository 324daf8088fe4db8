SET LOCAL maintenance_work_mem = '256MB';
CREATE INDEX audit_events_timestamp_ns_idx ON audit_events (event_timestamp, namespace);
DROP INDEX audit_events_timestamp_id_ns_idx;
