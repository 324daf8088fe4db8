-- A lookup (a correlation's timeline, an actor's or an event type's events) asks the catalogue
-- which cold files may hold its key instead of opening every file of the span: lookup_filter
-- is a bloom filter over the distinct correlation_id, actor_id and event_type values of the
-- file (one filter for the three, each value prefixed by its column's name), written with the
-- file. Its size is a power of two bits, about 10 bits per value (1% false positives), so a
-- file of 8,192 events holds one of 1-2 KiB. A file recorded before this column has none:
-- every lookup reads it, as before, until maintenance computes its filter.
ALTER TABLE audit_cold_files ADD COLUMN lookup_filter bytea
    CHECK (length(lookup_filter) >= 8 AND (length(lookup_filter) & (length(lookup_filter) - 1)) = 0);
-- Kept in the row (a filter does not compress, and a row with one still fits a page many
-- times), so testing it reads no TOAST table.
ALTER TABLE audit_cold_files ALTER COLUMN lookup_filter SET STORAGE MAIN;

-- Maintenance fills in the filters of files written before the column existed.
GRANT UPDATE (lookup_filter) ON audit_cold_files TO auditstore_owner;
