-- Dropping the table drops its triggers.
DROP TABLE admin_audit_log;
DROP FUNCTION admin_audit_log_refuse_change();
DROP TABLE admin_users;
DROP TABLE admin_roles;
