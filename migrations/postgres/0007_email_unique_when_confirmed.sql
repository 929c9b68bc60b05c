-- An address is unique among confirmed addresses only: a claim nobody confirmed reserves
-- nothing, so an account cannot squat another person's address by adding it unconfirmed, and
-- the address's real owner can still add and confirm it (which ends the other claims).
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key_confirmed ON users (email_key) WHERE email_confirmed_at IS NOT NULL;
CREATE INDEX users_email_key ON users (email_key);
