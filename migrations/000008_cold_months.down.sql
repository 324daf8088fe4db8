DROP TABLE audit_cold_files;
