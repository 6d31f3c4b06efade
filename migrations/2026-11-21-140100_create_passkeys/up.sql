-- WebAuthn credentials (passkeys) of a user.
CREATE TABLE passkeys (
    id            uuid        PRIMARY KEY,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The authenticator's credential id, base64url as the browser sends it;
    -- sign-in looks the passkey up by it, so it is globally unique.
    credential_id text        NOT NULL
        CONSTRAINT passkeys_credential_id_length CHECK (char_length(credential_id) BETWEEN 16 AND 1366),
    -- COSE-encoded public key.
    public_key    bytea       NOT NULL
        CONSTRAINT passkeys_public_key_length CHECK (octet_length(public_key) BETWEEN 16 AND 2048),
    -- The signature counter: must increase on every sign-in (or stay 0 on
    -- authenticators that do not count), otherwise the key may be cloned.
    counter       bigint      NOT NULL DEFAULT 0
        CONSTRAINT passkeys_counter_range CHECK (counter BETWEEN 0 AND 4294967295),
    transports    text[]      NOT NULL DEFAULT '{}'
        CONSTRAINT passkeys_transports_known
        CHECK (transports <@ ARRAY['usb', 'nfc', 'ble', 'internal', 'hybrid', 'smart-card']::text[]),
    device_name   text
        CONSTRAINT passkeys_device_name_length CHECK (char_length(device_name) BETWEEN 1 AND 100),
    last_used_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT passkeys_credential_id_key UNIQUE (credential_id)
);
CREATE INDEX passkeys_user_id_idx ON passkeys (user_id);
SELECT diesel_manage_updated_at('passkeys');
