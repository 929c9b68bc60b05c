-- Refresh tokens, stored only as SHA-256 hashes. A used token stays (with used_at) so that
-- presenting it again is recognised as theft and revokes its whole session.
CREATE TABLE refresh_tokens (
    token_hash TEXT   PRIMARY KEY,
    session_id TEXT   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
