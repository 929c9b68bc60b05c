#!/usr/bin/env python3
r"""A relying party in one small file: a web app that signs people in with MiniAuth over
OpenID Connect (authorization code flow with PKCE S256), written with Authlib.

    pip install authlib requests
    miniauth client create "Example RP" --redirect-uri http://localhost:8124/callback \
        --post-logout-redirect-uri http://localhost:8124/ --json
    python3 examples/oidc_rp.py --issuer http://localhost:8123 --client-id ID --client-secret S --port 8124

Then open http://localhost:8124/ (the name `localhost`, not 127.0.0.1: it must match the
registered redirect URI). It prints `listening <port>` once ready (`--port 0` picks a free one).

What it does, as any relying party should: it reads the provider's metadata from
/.well-known/openid-configuration; /login sends the browser there with a random `state`,
`nonce` and PKCE verifier, kept server-side; /callback checks the `state`, the `iss` parameter
(RFC 9207), exchanges the code, validates the ID token against the provider's JWKS (signature,
`iss`, `aud`, `exp`, `nonce`), asks /oauth/userinfo, and shows who signed in; /logout ends the
MiniAuth session too (RP-initiated logout). `--tamper` corrupts the ID token's signature before
the check, to show that a forged token is refused.
"""
import argparse
import html
import secrets
import warnings
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

with warnings.catch_warnings():  # Authlib ≥ 1.5 points to joserfc; authlib.jose works until 2.0.
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import BadSignatureError, JoseError

COOKIE = "oidc_rp_session"  # cookies ignore ports: a name MiniAuth (also on localhost) doesn't use
SCOPE = "openid profile email groups"


class SignInError(Exception):
    pass


class RelyingParty:
    def __init__(self, issuer, client_id, client_secret, tamper):
        self.client_id, self.client_secret, self.tamper = client_id, client_secret, tamper
        self.issuer = issuer.rstrip("/")
        self.meta = requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10).json()
        if self.meta["issuer"] != self.issuer:
            raise SystemExit(f"discovery names the issuer {self.meta['issuer']}, not {self.issuer}")
        # Asymmetric algorithms only: never "none", nor HS256 with a public key as its secret.
        algs = [a for a in self.meta["id_token_signing_alg_values_supported"] if a in ("RS256", "EdDSA", "ES256")]
        self.jwt, self.jwks = JsonWebToken(algs), self.fetch_jwks()
        self.pending = {}  # state → (browser session, PKCE verifier, nonce)
        self.sessions = {}  # browser session → {"user": ..., "id_token": ...}
        self.logouts = set()  # states of sign-outs under way
        self.base = None  # http://localhost:<port>, once bound

    def fetch_jwks(self):
        return JsonWebKey.import_key_set(requests.get(self.meta["jwks_uri"], timeout=10).json())

    def client(self):
        auth_method = "client_secret_basic" if self.client_secret else "none"  # "none": a --public client
        return OAuth2Session(self.client_id, self.client_secret, scope=SCOPE, redirect_uri=f"{self.base}/callback",
                             code_challenge_method="S256", token_endpoint_auth_method=auth_method)

    def login_url(self, sid):
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        self.pending[state] = (sid, verifier, nonce)
        url, _ = self.client().create_authorization_url(self.meta["authorization_endpoint"], state=state,
                                                        nonce=nonce, code_verifier=verifier)
        return url

    def signing_key(self, header, _payload):
        try:
            return self.jwks.find_by_kid(header.get("kid"))
        except ValueError:  # a key newer than our copy of the set: fetch it again, once
            self.jwks = self.fetch_jwks()
            return self.jwks.find_by_kid(header.get("kid"))

    def callback(self, sid, q):
        """Checks the answer to /login, signs the browser in; its new session id."""
        sid_for_state, verifier, nonce = self.pending.pop(q.get("state", ""), (None, None, None))
        if sid_for_state is None or sid_for_state != sid:
            raise SignInError("unknown state")
        if q.get("iss") != self.issuer:
            raise SignInError(f"iss is {q.get('iss')}, not {self.issuer}")
        if "error" in q:
            raise SignInError(f"{q['error']}: {q.get('error_description', '')}")
        client = self.client()
        token = client.fetch_token(self.meta["token_endpoint"], code=q.get("code", ""), code_verifier=verifier,
                                   timeout=10)
        id_token = token["id_token"]
        if self.tamper:
            head, body, sig = id_token.split(".")
            i = len(sig) // 2
            id_token = ".".join([head, body, sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]])
        try:
            claims = self.jwt.decode(id_token, self.signing_key, claims_options={
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.client_id}, "azp": {"value": self.client_id},
                "exp": {"essential": True}, "sub": {"essential": True},
                "nonce": {"essential": True, "value": nonce}})
            claims.validate(leeway=60)
        except BadSignatureError:
            raise SignInError("bad ID token signature")
        except (JoseError, ValueError) as e:
            raise SignInError(f"the ID token was refused ({e})")
        user = client.get(self.meta["userinfo_endpoint"], timeout=10)
        user.raise_for_status()
        user = user.json()
        if user.get("sub") != claims["sub"]:
            raise SignInError("userinfo is about someone else")
        self.sessions.pop(sid, None)
        sid = secrets.token_urlsafe(32)  # a new session id at sign-in (no session fixation)
        self.sessions[sid] = {"user": user, "id_token": token["id_token"]}
        return sid

    def logout_url(self, sid):
        session = self.sessions.pop(sid, None)
        if session is None:
            return "/"
        state = secrets.token_urlsafe(16)
        self.logouts.add(state)
        return self.meta["end_session_endpoint"] + "?" + urlencode({
            "id_token_hint": session["id_token"], "post_logout_redirect_uri": f"{self.base}/", "state": state})


def page(body):
    return f"<!doctype html><meta charset=utf-8><title>Example RP</title><h1>Example RP</h1>{body}"


class Handler(BaseHTTPRequestHandler):
    rp: RelyingParty

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        cookie = SimpleCookie(self.headers.get("Cookie", "")).get(COOKIE)
        sid = cookie.value if cookie else secrets.token_urlsafe(32)
        if url.path == "/":
            note = '<p id="signed-out">Signed out.</p>' if q.get("state") in self.rp.logouts else ""
            self.rp.logouts.discard(q.get("state"))
            self.reply(200, sid, page(note + self.user_page(self.rp.sessions.get(sid))))
        elif url.path == "/login":
            self.reply(303, sid, location=self.rp.login_url(sid))
        elif url.path == "/callback":
            try:
                sid = self.rp.callback(sid, q)
                self.reply(200, sid, page(self.user_page(self.rp.sessions[sid])))
            except (SignInError, OAuthError, requests.RequestException, KeyError, ValueError) as e:
                reason = f"{e.error}: {e.description}" if isinstance(e, OAuthError) else str(e) or repr(e)
                self.reply(401, sid, page(f'<p id="error">Sign-in failed: {html.escape(reason)}</p>'
                                          '<p><a href="/">Back</a></p>'))
        elif url.path == "/logout":
            self.reply(303, sid, location=self.rp.logout_url(sid))
        else:
            self.reply(404, sid, page("<p>Not found</p>"))

    @staticmethod
    def user_page(session):
        if session is None:
            return '<p>Not signed in</p><p><a id="sign-in" href="/login">Sign in with MiniAuth</a></p>'
        user, e = session["user"], html.escape
        return (f'<p id="user">Signed in as {e(str(user.get("preferred_username", "")))}</p>'
                f'<p id="sub">{e(str(user["sub"]))}</p><p id="groups">{e(",".join(user.get("groups", [])))}</p>'
                '<p><a id="sign-out" href="/logout">Sign out</a></p>')

    def reply(self, status, sid, body="", location=None):
        self.send_response(status)
        self.send_header("Set-Cookie", f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax")
        self.send_header("Cache-Control", "no-store")
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        data = body.encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code="-", size="-"):  # without the query: it holds the code and state
        self.log_message("%s %s %s", self.command, urlsplit(self.path).path, getattr(code, "value", code))


def main():
    p = argparse.ArgumentParser(description="An OpenID Connect relying party for MiniAuth.")
    p.add_argument("--issuer", required=True, help="MiniAuth's public_url, e.g. http://localhost:8123")
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", help="omit for a client made with --public")
    p.add_argument("--port", type=int, default=0, help="0 (the default) picks a free port")
    p.add_argument("--tamper", action="store_true", help="corrupt the ID token's signature (a test)")
    args = p.parse_args()
    Handler.rp = RelyingParty(args.issuer, args.client_id, args.client_secret, args.tamper)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    Handler.rp.base = f"http://localhost:{server.server_port}"
    print(f"listening {server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
