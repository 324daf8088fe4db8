-- A reader of some namespaces adds namespace = ... to every query, and for a JSON containment
-- (event_data @> ...) the GIN index could not check it: a bitmap of the containment fetched
-- every matching row of every namespace, dropped the others, and did so once per namespace of
-- the scope (one statement branch each). A workflow_id in a scope of two namespaces holding a
-- fifth of the events fetched 33,000 rows (a time-ordered scan) where the same page with
-- namespace in the index fetched 335 (3 ms against 85 ms on one month). With namespace as a
-- second column of the GIN index, a bitmap holds only the scope's matches; a containment alone
-- reads the event_data entries exactly as before (a multicolumn GIN index answers a condition
-- on any of its columns), and each row adds one namespace entry.
--
-- GIN indexes a text column with equality only through btree_gin, an extension shipped with
-- PostgreSQL (contrib; trusted, so a database owner may create it without being superuser).
--
-- Cost: CREATE INDEX on the partitioned table builds one index per partition and takes a SHARE
-- lock on each until the migration commits. Writes wait while it is built, reads do not: a GIN
-- index over event_data is the slowest index to build, 7.5 minutes at 5M events on 2 cores
-- shared with other work (about 30 s per 320,000 events). maintenance_work_mem is raised for this
-- transaction only, as a GIN build is much faster with room to sort its entries; on a larger
-- table run it in a quiet hour and raise MIGRATE_STATEMENT_TIMEOUT to cover the build.
--
-- Two B-tree indexes lead with an equality column, then namespace, then time, so that each
-- namespace branch of a scoped actor or outcome query is one exact range in time order. The
-- (x, event_timestamp, namespace) indexes of migration 000006 check namespace in the index but
-- read past every other namespace's entries to do it: five times the entries for a scope
-- holding a fifth of the events (p99 of an actor + outcome page over 7 days was 1.72 times a
-- cluster reader's with them alone, 1.03 with these). A cluster reader still needs those for
-- its own time order, so these are added, not swapped: two more entries per written event.
-- They take 45-50 s each to build at 5M events, in the same transaction as the GIN index.
-- (A (namespace, event_timestamp) index was tried too: the planner kept reading the 000006
-- time index for a scoped branch, so it would have cost writes for nothing.)
CREATE EXTENSION IF NOT EXISTS btree_gin;
SET LOCAL maintenance_work_mem = '256MB';
CREATE INDEX audit_events_event_data_ns_idx ON audit_events USING gin (event_data jsonb_path_ops, namespace);
DROP INDEX audit_events_event_data_idx;
CREATE INDEX audit_events_actor_ns_ts_idx ON audit_events (actor_id, namespace, event_timestamp);
CREATE INDEX audit_events_outcome_ns_ts_idx ON audit_events (event_outcome, namespace, event_timestamp);
