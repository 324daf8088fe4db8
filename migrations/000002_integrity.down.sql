DROP TABLE IF EXISTS audit_checkpoints;
DROP TABLE IF EXISTS audit_log_nodes;
DROP TABLE IF EXISTS audit_log_leaves;
DROP FUNCTION IF EXISTS audit_log_guard();
DROP INDEX IF EXISTS audit_event_keys_unsealed_idx;
ALTER TABLE audit_event_keys DROP COLUMN IF EXISTS leaf_index, DROP COLUMN IF EXISTS event_hash;
ALTER TABLE audit_events DROP COLUMN IF EXISTS event_hash, DROP COLUMN IF EXISTS hash_version;
