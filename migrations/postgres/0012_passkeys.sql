-- Passkeys (WebAuthn credentials). Nothing here is secret: the credential's id, its public key
-- and the flags the authenticator reported, as the WebAuthn library stores them (`credential`,
-- JSON), and the signature counter, kept in its own column so that a counter going backwards is
-- refused by one conditional statement across instances. `user_handle` is the random id the
-- authenticator keeps for the account and returns at a sign-in without a username.
CREATE TABLE passkeys (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT    NOT NULL,
    user_handle   TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    credential    TEXT    NOT NULL,
    counter       BIGINT  NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL,
    last_used_at  BIGINT
);
CREATE UNIQUE INDEX passkeys_credential_id ON passkeys (credential_id);
CREATE INDEX passkeys_user_id ON passkeys (user_id);

-- WebAuthn ceremonies under way: the challenge and what the library needs to check the answer
-- (`state`, JSON), by the SHA-256 of the ceremony's token. Each is taken (deleted) by the
-- answer, so it is single use, and lives 5 minutes. `purpose` is register, sign_in or
-- second_step; `user_id` is whose it is (none for a sign-in without a username).
CREATE TABLE passkey_ceremonies (
    token_hash TEXT    PRIMARY KEY,
    purpose    TEXT    NOT NULL,
    user_id    BIGINT  REFERENCES users (id) ON DELETE CASCADE,
    state      TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX passkey_ceremonies_expires_at ON passkey_ceremonies (expires_at);
