-- Usernames are unique by a key MiniAuth computes itself (the name in ASCII lower case), not
-- by the database's `lower()`, which follows its collation: under a Turkish or Azeri one,
-- `lower('I')` is a dotless `ı`, so `IVAN` and `ivan` could both register and `Irene` could
-- never sign in. `translate` maps A–Z to a–z whatever the collation. A name that collides
-- with an older one on its key (possible only where the old index let it in) gets a key no
-- name can have (`#` and its id): the older account keeps the name.
ALTER TABLE users ADD COLUMN username_key TEXT NOT NULL DEFAULT '';
UPDATE users SET username_key = translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
UPDATE users SET username_key = username_key || '#' || id
 WHERE EXISTS (SELECT 1 FROM users older WHERE older.username_key = users.username_key AND older.id < users.id);
DROP INDEX users_username_lower;
CREATE UNIQUE INDEX users_username_key ON users (username_key);
