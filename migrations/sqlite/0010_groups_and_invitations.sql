-- Groups, managed by administrators. A name follows the username rule and is unique regardless
-- of case by `name_key`, computed by MiniAuth (never by the database's collation).
CREATE TABLE user_groups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    name_key   TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);
CREATE UNIQUE INDEX user_groups_name_key ON user_groups (name_key);

-- Who is in which group: read with every session check, by user.
CREATE TABLE group_members (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    added_at BIGINT  NOT NULL,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX group_members_group_id ON group_members (group_id);

-- One-time invitations to sign up. Only a SHA-256 of each token is kept. An invitation is
-- spent when used (`used_at`, `used_by`: the account it made), revoked, or expired.
CREATE TABLE invitations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    used_at    BIGINT,
    used_by    INTEGER REFERENCES users (id) ON DELETE SET NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX invitations_token_hash ON invitations (token_hash);

-- The groups an invitation puts its new account in.
CREATE TABLE invitation_groups (
    invitation_id INTEGER NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    group_id      INTEGER NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (invitation_id, group_id)
);
CREATE INDEX invitation_groups_group_id ON invitation_groups (group_id);
