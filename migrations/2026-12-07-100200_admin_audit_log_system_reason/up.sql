-- The escape hatch's reason (`Ctx::system("...")`) on the audit entries
-- written under it, beside the event logged at each checkout: an admin
-- action taken through the escape hatch says why in the record that
-- outlives the logs. The reason is a string literal of the calling code.
SET lock_timeout = '5s';
ALTER TABLE admin_audit_log ADD COLUMN system_reason text;
