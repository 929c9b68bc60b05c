-- Recovery by email (SPEC §11). The address is optional. `email_key` is the address
-- lower-cased (by MiniAuth, the same way on every backend) and makes it unique regardless of
-- case; `email_confirmed_at` is set once its owner followed the link mailed to it, and cleared
-- whenever the address changes.
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_key TEXT;
ALTER TABLE users ADD COLUMN email_confirmed_at BIGINT;
CREATE UNIQUE INDEX users_email_key ON users (email_key);

-- One-time tokens sent by mail: `confirm` (that `email` is its owner's) and `reset` (a new
-- password). Only a SHA-256 of each is kept. A token is spent when used, when a newer one of
-- its kind is asked for, when the address changes, and (`reset`) when the password changes.
CREATE TABLE mail_tokens (
    token_hash TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX mail_tokens_user_id ON mail_tokens (user_id, purpose);
CREATE INDEX mail_tokens_expires_at ON mail_tokens (expires_at);
