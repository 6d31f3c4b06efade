SET lock_timeout = '5s';
ALTER TABLE admin_audit_log DROP COLUMN system_reason;
