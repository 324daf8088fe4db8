REVOKE UPDATE (lookup_filter) ON audit_cold_files FROM auditstore_owner;
ALTER TABLE audit_cold_files DROP COLUMN lookup_filter;
