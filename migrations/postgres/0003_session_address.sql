-- Where each session signed in from: an IPv4 address or an IPv6 /64, as the client address
-- guard counts it ('' for sessions from before).
ALTER TABLE sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';
