#!/usr/bin/env python3
"""MiniAuth's JSON API through off-the-shelf OAuth2 client libraries, as an API client written
against "an OAuth2 password grant" uses it: Authlib's `OAuth2Session` and, when it is installed,
requests-oauthlib's `LegacyApplicationClient`.

    python3 examples/oauth2_password_client.py http://127.0.0.1:8000 USERNAME PASSWORD

With each library: a token from the username and password (`POST /auth/login`, the password
grant's form), the profile with it, two refreshes (`POST /auth/refresh`, the refresh grant's
form), then the errors a client must be able to tell apart: a wrong password and a spent refresh
token each raise the library's error for `invalid_grant`. Prints one JSON line per step; exits
non-zero at the first step that does not go as described.

Needs: authlib, requests; requests-oauthlib (optional).
"""
import json
import os
import sys
import time

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError


# Seconds to wait before presenting a spent refresh token: past the server's `refresh_grace`
# (the tests run it with 0; the default is 10).
GRACE_PAST = float(os.environ.get("GRACE_PAST", "1.5"))


def step(library, name, **facts):
    print(json.dumps({"library": library, "step": name, **facts}), flush=True)


def profile(base, token):
    answer = requests.get(f"{base}/auth/profile", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    answer.raise_for_status()
    return answer.json()


def with_authlib(base, username, password):
    library = "authlib"
    # No client credentials: MiniAuth's API clients are the users themselves.
    session = OAuth2Session(token_endpoint_auth_method="none")
    token = session.fetch_token(f"{base}/auth/login", username=username, password=password)
    step(library, "token", token_type=token["token_type"], expires_in=token["expires_in"])
    me = profile(base, token["access_token"])
    assert me["username"] == username, me
    step(library, "profile", username=me["username"])
    first = token["refresh_token"]
    seen = {first}
    for n in (1, 2):
        renewed = session.refresh_token(f"{base}/auth/refresh")
        assert renewed["refresh_token"] not in seen, "a new refresh token each time"
        seen.add(renewed["refresh_token"])
        assert profile(base, renewed["access_token"])["username"] == username
        step(library, f"refresh {n}")
    try:
        OAuth2Session(token_endpoint_auth_method="none").fetch_token(
            f"{base}/auth/login", username=username, password=password + " not"
        )
        raise AssertionError("a wrong password gave a token")
    except OAuthError as e:
        assert e.error == "invalid_grant", e.error
        step(library, "wrong password", error=e.error, description=e.description)
    # Past `refresh_grace` (a retry's window), a token exchanged already is a copy in the wrong
    # hands: refused, and its session ends.
    time.sleep(GRACE_PAST)
    try:
        session.refresh_token(f"{base}/auth/refresh", refresh_token=first)
        raise AssertionError("a spent refresh token was renewed")
    except OAuthError as e:
        assert e.error == "invalid_grant", e.error
        step(library, "spent refresh token", error=e.error, description=e.description)


def with_requests_oauthlib(base, username, password):
    try:
        from oauthlib.oauth2 import InvalidGrantError, LegacyApplicationClient
        from requests_oauthlib import OAuth2Session as LegacySession
    except ImportError:
        step("requests-oauthlib", "not installed")
        return
    library = "requests-oauthlib"
    # requests-oauthlib refuses plain http unless told; a real deployment is https.
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    client_id = "api-client"
    session = LegacySession(client=LegacyApplicationClient(client_id=client_id))
    token = session.fetch_token(f"{base}/auth/login", username=username, password=password, client_id=client_id)
    step(library, "token", token_type=token["token_type"], expires_in=token["expires_in"])
    assert profile(base, token["access_token"])["username"] == username
    step(library, "profile", username=username)
    first = token["refresh_token"]
    for n in (1, 2):
        renewed = session.refresh_token(f"{base}/auth/refresh", client_id=client_id)
        assert profile(base, renewed["access_token"])["username"] == username
        step(library, f"refresh {n}")
    try:
        LegacySession(client=LegacyApplicationClient(client_id=client_id)).fetch_token(
            f"{base}/auth/login", username=username, password=password + " not", client_id=client_id
        )
        raise AssertionError("a wrong password gave a token")
    except InvalidGrantError as e:
        step(library, "wrong password", error=e.error, description=e.description)
    time.sleep(GRACE_PAST)
    try:
        session.refresh_token(f"{base}/auth/refresh", refresh_token=first, client_id=client_id)
        raise AssertionError("a spent refresh token was renewed")
    except InvalidGrantError as e:
        step(library, "spent refresh token", error=e.error, description=e.description)


def main():
    base, username, password = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    with_authlib(base, username, password)
    with_requests_oauthlib(base, username, password)
    step("all", "done")


if __name__ == "__main__":
    main()
