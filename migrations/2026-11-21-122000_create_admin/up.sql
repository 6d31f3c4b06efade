-- Platform administration: named roles carrying permissions, which users
-- hold which role, and an append-only audit log of every admin mutation.

CREATE TABLE admin_roles (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL
        CONSTRAINT admin_roles_name_length CHECK (char_length(name) BETWEEN 1 AND 64),
    description text
        CONSTRAINT admin_roles_description_length CHECK (char_length(description) <= 500),
    -- Permission strings such as 'users.read'; checked with `= ANY(permissions)`.
    permissions text[]      NOT NULL DEFAULT '{}'
        CONSTRAINT admin_roles_permissions_no_nulls CHECK (array_position(permissions, NULL) IS NULL),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT admin_roles_name_key UNIQUE (name)
);
SELECT diesel_manage_updated_at('admin_roles');

-- A grant: this user holds this admin role. A user is an admin while they
-- hold at least one row here.
CREATE TABLE admin_users (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Deleting a role takes its grants with it.
    role_id    uuid        NOT NULL REFERENCES admin_roles (id) ON DELETE CASCADE,
    -- The grant outlives the admin who made it.
    granted_by uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Also serves the user_id foreign key and has_permission's lookup.
    CONSTRAINT admin_users_user_role_key UNIQUE (user_id, role_id)
);
CREATE INDEX admin_users_role_id_idx ON admin_users (role_id);
CREATE INDEX admin_users_granted_by_idx ON admin_users (granted_by);

-- The audit log. actor_id deliberately has no foreign key: the log must
-- outlive users, and ON DELETE SET NULL would be an UPDATE, which the
-- trigger below refuses.
CREATE TABLE admin_audit_log (
    id          uuid        PRIMARY KEY,
    actor_id    uuid        NOT NULL,
    action      text        NOT NULL
        CONSTRAINT admin_audit_log_action_length CHECK (char_length(action) BETWEEN 1 AND 100),
    entity_type text        NOT NULL
        CONSTRAINT admin_audit_log_entity_type_length CHECK (char_length(entity_type) BETWEEN 1 AND 64),
    entity_id   text
        CONSTRAINT admin_audit_log_entity_id_length CHECK (char_length(entity_id) <= 200),
    before      jsonb,
    after       jsonb,
    ip_address  text
        CONSTRAINT admin_audit_log_ip_address_length CHECK (char_length(ip_address) <= 45),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- The list paths: everything newest first, by actor, by entity; each ends
-- with (created_at, id) for keyset pagination.
CREATE INDEX admin_audit_log_created_idx ON admin_audit_log (created_at DESC, id DESC);
CREATE INDEX admin_audit_log_actor_created_idx ON admin_audit_log (actor_id, created_at DESC, id DESC);
CREATE INDEX admin_audit_log_entity_created_idx ON admin_audit_log (entity_type, entity_id, created_at DESC, id DESC);

-- Append-only at the database, not just in the crate: an UPDATE, DELETE or
-- TRUNCATE from anyone (a psql session, another service) raises.
CREATE FUNCTION admin_audit_log_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER admin_audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON admin_audit_log
    FOR EACH ROW EXECUTE FUNCTION admin_audit_log_refuse_change();
CREATE TRIGGER admin_audit_log_no_truncate
    BEFORE TRUNCATE ON admin_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION admin_audit_log_refuse_change();
