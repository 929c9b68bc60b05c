-- Two-step sign-in. An authenticator app's secret (TOTP, RFC 6238) per user: `confirmed_at` is
-- NULL while it waits for its first code (the factor is not on yet). `last_step` is the newest
-- time step a code was accepted for: a code of that step, or of an older one, never again.
CREATE TABLE totp_factors (
    user_id      INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    confirmed_at BIGINT,
    last_step    BIGINT  NOT NULL DEFAULT 0
);

-- Recovery codes: only a SHA-256 of each is kept; each works once.
CREATE TABLE recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT    NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Sign-ins whose password was right, waiting for their second step. Only a SHA-256 of each
-- token is kept; one is spent when used, after too many wrong codes, or when it expires.
CREATE TABLE pending_sign_ins (
    token_hash TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    failures   INTEGER NOT NULL DEFAULT 0,
    used_at    BIGINT
);
CREATE INDEX pending_sign_ins_expires_at ON pending_sign_ins (expires_at);

-- How each session signed in (RFC 8176 methods, space-separated): `pwd`, or `pwd otp mfa`.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
