-- btree_gin stays: other objects may have come to use it, and it costs nothing unused.
SET LOCAL maintenance_work_mem = '256MB';
CREATE INDEX audit_events_event_data_idx ON audit_events USING gin (event_data jsonb_path_ops);
DROP INDEX audit_events_event_data_ns_idx;
DROP INDEX audit_events_actor_ns_ts_idx;
DROP INDEX audit_events_outcome_ns_ts_idx;
