-- A tenant: the organisation that owns data. Every tenant-owned table
-- references it, and every repository function over such a table takes the
-- tenant id (see src/tenancy/).

CREATE TABLE tenants (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL
        CONSTRAINT tenants_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    -- The URL-safe handle: lowercase letters, digits and inner hyphens.
    slug       text        NOT NULL
        CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_slug_key UNIQUE (slug)
);
SELECT diesel_manage_updated_at('tenants');
