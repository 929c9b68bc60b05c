-- The keys that sign access tokens (SPEC §9), shared by every instance on this database. Per
-- algorithm, at most one key signs (activated, not retired) and at most one waits, published
-- ahead, to sign after the next rotation (not yet activated). A retired key keeps verifying
-- until the tokens it signed have expired; the purge then deletes it.
CREATE TABLE signing_keys (
    kid          TEXT    PRIMARY KEY,
    algorithm    TEXT    NOT NULL,
    -- base64url: the PKCS#8 document of an Ed25519 key, or an HS256 key's bytes.
    private_key  TEXT    NOT NULL,
    -- base64url: an Ed25519 public key; '' for HS256, whose keys are never published.
    public_key   TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    activated_at BIGINT,
    retired_at   BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (algorithm)
    WHERE activated_at IS NOT NULL AND retired_at IS NULL;
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (algorithm) WHERE activated_at IS NULL;

-- The server's own secrets, by name: `hmac` derives the CSRF and device-cookie keys. In the
-- database so that instances need no shared secret in their environment.
CREATE TABLE server_secrets (
    name       TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
