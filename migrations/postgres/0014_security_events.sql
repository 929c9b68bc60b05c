-- The security activity log: one row per security event (a sign-in, a failed or throttled one,
-- a second factor or passkey added or removed, a password or email change, a session revoked, a
-- refresh token reused, an account deleted, an app's consent, an administrator's command),
-- written in the same transaction as the change it describes. `user_id` has no foreign key: the
-- events of a deleted account stay (for administrators) until `event_retention_days` is past.
-- Ids are never reused, so a new account never sees an old one's events.
CREATE TABLE security_events (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT  NOT NULL,
    kind       TEXT    NOT NULL,
    -- NULL: no account (a sign-in with an unknown name, most administrator commands).
    user_id    BIGINT,
    -- The account's name, or the name a failed sign-in typed.
    username   TEXT    NOT NULL,
    -- The client's address as counted ('' for the command line) and its User-Agent.
    address    TEXT    NOT NULL,
    user_agent TEXT    NOT NULL,
    -- What else tells the event apart, as a JSON object (never a secret).
    detail     TEXT    NOT NULL
);
-- A user's last events. No index on `at`: ids follow time, so the purge takes the oldest by id,
-- and each index is one more page a sign-in writes.
CREATE INDEX security_events_user ON security_events (user_id, id);
