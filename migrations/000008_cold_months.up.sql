-- The cold tier's catalogue: one row per Parquet file of a month moved to object storage
-- (ARCHIVE_URL, Hive-style keys audit_events_cold/retention_class=<class>/month=<yyyy-mm>/).
-- Maintenance writes a file, reads it back and checks it, records it here, and only then
-- detaches and drops the month's partition; the query function reads this table to know which
-- files a query may need (by class, month, time and correlation_id range) without listing the
-- bucket. A month may have several files: late events for a cold month go hot and move on the
-- next run, as a file of their own.
CREATE TABLE audit_cold_files (
    key                text        PRIMARY KEY,
    retention_days     integer     NOT NULL,
    month              date        NOT NULL CHECK (extract(day FROM month) = 1),
    -- source_oid is the partition the file was made from: while that table is still attached
    -- (a move between its record and its detach) a query reads the events hot, not here.
    source_oid         oid         NOT NULL,
    rows               bigint      NOT NULL CHECK (rows > 0),
    bytes              bigint      NOT NULL CHECK (bytes > 0),
    sha256             text        NOT NULL,
    rows_sha256        text        NOT NULL,
    min_event_timestamp timestamptz NOT NULL,
    max_event_timestamp timestamptz NOT NULL,
    min_correlation_id text        NOT NULL COLLATE "C",
    max_correlation_id text        NOT NULL COLLATE "C",
    schema_version     integer     NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_cold_files_month ON audit_cold_files (retention_days, month);

GRANT SELECT ON audit_cold_files TO auditstore_reader;
GRANT SELECT, INSERT, DELETE ON audit_cold_files TO auditstore_owner;
