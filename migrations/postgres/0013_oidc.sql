-- OpenID Connect: the apps that sign their users in with MiniAuth (clients), what each user
-- allowed each app to see (consents), the authorization codes in flight, and what an app holds:
-- a grant (one per code exchanged) and its tokens. Every secret is stored as the SHA-256 of a
-- random value of 256 bits (base64url): client secrets, codes, access and refresh tokens.
CREATE TABLE oauth_clients (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    -- '' for a public client (no secret: PKCE alone binds its codes).
    secret_hash   TEXT    NOT NULL,
    -- One address per line, each matched exactly.
    redirect_uris TEXT    NOT NULL,
    -- Where RP-initiated logout may send the browser back to, one per line ('' for nowhere).
    logout_uris   TEXT    NOT NULL,
    -- How its ID tokens are signed: RS256 or EdDSA.
    id_token_alg  TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL
);

-- What a user allowed an app (the scopes, space-separated), remembered so that the next
-- sign-in asks nothing. Revoking the app deletes it and revokes the app's grants.
CREATE TABLE oauth_consents (
    user_id    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    scope      TEXT    NOT NULL,
    granted_at BIGINT  NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- An app's hold on a user's account: made when a code is exchanged, it lives until its refresh
-- tokens would (session_ttl), and is revoked as a whole (app revoked, code or refresh token
-- reused). `auth_time` and `amr` are the sign-in's, for the ID tokens it issues.
CREATE TABLE oauth_grants (
    id         TEXT    PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope      TEXT    NOT NULL,
    auth_time  BIGINT  NOT NULL,
    amr        TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX oauth_grants_user_client ON oauth_grants (user_id, client_id);

-- Authorization codes: single use, 60 seconds. Exchanging one records the grant it made, so
-- that the same code presented again revokes that grant. `nonce` is '' when none was sent.
CREATE TABLE oauth_codes (
    code_hash      TEXT    PRIMARY KEY,
    client_id      TEXT    NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id        BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   TEXT    NOT NULL,
    scope          TEXT    NOT NULL,
    nonce          TEXT    NOT NULL,
    code_challenge TEXT    NOT NULL,
    auth_time      BIGINT  NOT NULL,
    amr            TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL,
    used_at        BIGINT,
    grant_id       TEXT
);
CREATE INDEX oauth_codes_expires_at ON oauth_codes (expires_at);

-- A grant's tokens: `access` (bearer, for userinfo) and `refresh` (rotated: `used_at` marks the
-- one exchanged, whose successor is derived from it).
CREATE TABLE oauth_tokens (
    token_hash TEXT    PRIMARY KEY,
    grant_id   TEXT    NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    used_at    BIGINT
);
CREATE INDEX oauth_tokens_grant_id ON oauth_tokens (grant_id);
