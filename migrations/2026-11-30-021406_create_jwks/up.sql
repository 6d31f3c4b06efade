-- JSON Web Key Set: the keys a service signs its JSON Web Tokens with
-- (seed 004's auth domain: user, session, account, verification, jwks).
-- The row's id is the key id (`kid`). The private key is stored only
-- sealed (ChaCha20-Poly1305 under a key from the service's environment);
-- the public key is the JWK that verifiers download.
CREATE TABLE jwks (
    id          uuid        PRIMARY KEY,
    algorithm   text        NOT NULL
        CONSTRAINT jwks_algorithm_known CHECK (algorithm IN ('EdDSA')),
    -- The public JWK ({"kty": "OKP", "crv": "Ed25519", "x": ..., "kid": ...}).
    public_key  jsonb       NOT NULL
        CONSTRAINT jwks_public_key_object CHECK (jsonb_typeof(public_key) = 'object'),
    -- nonce (12 bytes) || ciphertext || tag (16 bytes) of the private key.
    private_key bytea       NOT NULL
        CONSTRAINT jwks_private_key_length CHECK (octet_length(private_key) BETWEEN 29 AND 1024),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Until then the key is published (verifiers accept its signatures).
    expires_at  timestamptz NOT NULL,
    -- Set when a newer key took over signing; the key stays published.
    retired_at  timestamptz,
    CONSTRAINT jwks_expires_after_creation CHECK (expires_at > created_at)
);
-- At most one key signs: the one not retired.
CREATE UNIQUE INDEX jwks_one_signing_key_idx ON jwks ((true)) WHERE retired_at IS NULL;
-- The public document and the purge filter on expiry.
CREATE INDEX jwks_expires_at_idx ON jwks (expires_at);
SELECT diesel_manage_updated_at('jwks');
