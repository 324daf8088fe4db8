CREATE INDEX audit_events_event_type_idx ON audit_events (event_type, event_timestamp);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, event_timestamp);
CREATE INDEX audit_events_outcome_idx ON audit_events (event_outcome, event_timestamp);
CREATE INDEX audit_events_timestamp_idx ON audit_events (event_timestamp);
DROP INDEX audit_events_event_type_ns_idx;
DROP INDEX audit_events_actor_ns_idx;
DROP INDEX audit_events_outcome_ns_idx;
DROP INDEX audit_events_timestamp_ns_idx;
