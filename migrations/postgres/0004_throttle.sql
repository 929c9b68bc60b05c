-- Throttling counters (SPEC §10), shared by every instance on this database. One row per
-- counter: `pair` (username, address), `address`, `user` (username) for failed password
-- checks, `register` (address) for sign-ups. Usernames are lower-cased; '' where a kind has
-- none. A row is spent once both its window and its block are over (`expires_at`).
CREATE TABLE throttle (
    kind          TEXT    NOT NULL,
    username      TEXT    NOT NULL,
    address       TEXT    NOT NULL,
    window_start  BIGINT  NOT NULL,
    count         BIGINT  NOT NULL,
    blocked_until BIGINT  NOT NULL DEFAULT 0,
    expires_at    BIGINT  NOT NULL,
    PRIMARY KEY (kind, username, address)
);
CREATE INDEX throttle_expires_at ON throttle (expires_at);
