DROP TABLE IF EXISTS audit_deadletters;
DROP FUNCTION IF EXISTS audit_deadletters_guard();
