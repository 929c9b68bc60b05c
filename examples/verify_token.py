#!/usr/bin/env python3
"""Verify MiniAuth access tokens the way another service would: with PyJWT and the public keys
MiniAuth publishes, never with a shared secret.

    pip install "PyJWT[crypto]"
    python3 examples/verify_token.py http://127.0.0.1:8000 "$ACCESS_TOKEN"
    some-command | python3 examples/verify_token.py http://127.0.0.1:8000   # a token per line

The key set (/.well-known/jwks.json) is fetched once and cached, as a service would; a token
whose `kid` is not in the cached set makes PyJWKClient fetch it again. Each token's key is
picked by its `kid`; the signature is checked with EdDSA only, then `exp`, `iss` and `aud`.
For each token it prints `ok <claims as JSON>` or `refused: <why>`; it exits 0 when every
token was accepted, 1 otherwise.

A verifier checks the token alone: it cannot know that the session was revoked a minute ago.
Tokens live 15 minutes; a service that must honour a sign-out at once asks MiniAuth instead
(GET /auth/profile with the token).
"""
import json
import sys

import jwt


class Verifier:
    def __init__(self, base_url, issuer="miniauth", audience="miniauth"):
        self.keys = jwt.PyJWKClient(f"{base_url.rstrip('/')}/.well-known/jwks.json",
                                    cache_jwk_set=True, lifespan=600)
        self.issuer, self.audience = issuer, audience

    def verify(self, token):
        """The token's claims, or an exception saying why it is refused."""
        key = self.keys.get_signing_key_from_jwt(token)
        return jwt.decode(token, key, algorithms=["EdDSA"], issuer=self.issuer, audience=self.audience,
                          options={"require": ["exp", "iat", "iss", "aud", "sub"]})


def main():
    if len(sys.argv) not in (2, 3):
        print("usage: verify_token.py BASE_URL [ACCESS_TOKEN]   (tokens on stdin, one per line)",
              file=sys.stderr)
        return 2
    verifier = Verifier(sys.argv[1])
    tokens = [sys.argv[2]] if len(sys.argv) == 3 else (line.strip() for line in sys.stdin)
    all_accepted = True
    for token in tokens:
        try:
            print("ok", json.dumps(verifier.verify(token), sort_keys=True), flush=True)
        except (jwt.PyJWTError, jwt.PyJWKClientError) as e:
            print(f"refused: {e}", flush=True)
            all_accepted = False
    return 0 if all_accepted else 1


if __name__ == "__main__":
    sys.exit(main())
