-- Device tokens (proof that a client signed in to an account before, which exempts it from the
-- per-username throttle) are signed over the account's generation: a password change, a reset
-- and a global sign-out advance it, and every device token issued before stops vouching.
ALTER TABLE users ADD COLUMN device_generation BIGINT NOT NULL DEFAULT 0;
