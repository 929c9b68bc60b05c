#!/usr/bin/env bash
# API fuzzing: schemathesis against /openapi.json of a running release server, with every check,
# once anonymous and once with a live bearer token; on SQLite, and on PostgreSQL too when
# MINIAUTH_TEST_POSTGRES_URL is set. Exits non-zero on any failure (a 5xx, a status, content type,
# header or body the spec does not document, valid input refused, invalid input accepted, …) and
# on any schemathesis warning (e.g. a token that did not work). Fix the server or the spec, never
# the check.
#
#   bash .ci/schemathesis.sh [--skip-build]
#
# Settings (environment):
#   SCHEMATHESIS_VENV          virtual environment, reused when present
#                              (default /tmp/miniauth-schemathesis-venv)
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation in the fuzzing phase (default 300, at least 100)
#   SCHEMATHESIS_SEED          random seed, for reproducible runs (default 20261125)
#   SCHEMATHESIS_KEEP=1        keep the work folder (server logs, JUnit reports) afterwards
#   MINIAUTH_SKIP_BUILD=1      same as --skip-build: use target/release/miniauth as it is
#   MINIAUTH_TEST_POSTGRES_URL e.g. postgres://postgres@127.0.0.1:5432/postgres: also fuzz a
#                              fresh PostgreSQL database (created here, dropped afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

SCHEMATHESIS_VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-/tmp/miniauth-schemathesis-venv}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-300}
SEED=${SCHEMATHESIS_SEED:-20261125}
SKIP_BUILD=${MINIAUTH_SKIP_BUILD:-0}
for arg in "$@"; do
    case "$arg" in
        --skip-build) SKIP_BUILD=1 ;;
        *) echo "usage: $0 [--skip-build]" >&2; exit 2 ;;
    esac
done
if ! [ "$MAX_EXAMPLES" -ge 100 ] 2>/dev/null; then
    echo "SCHEMATHESIS_MAX_EXAMPLES must be a number of at least 100" >&2
    exit 2
fi

step() { printf '\n==> %s\n' "$*"; }

WORK=$(mktemp -d /tmp/miniauth-schemathesis.XXXXXX)
SERVER_PID=""
PG_ADMIN_URL=""
PG_DB=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() {
    stop_server
    if [ -n "$PG_DB" ]; then
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if [ -n "${SCHEMATHESIS_KEEP:-}" ]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "schemathesis $SCHEMATHESIS_VERSION in $VENV"
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    PYTHON=$(command -v python3.11 || command -v python3)
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$VENV/bin/schemathesis" --version

if [ "$SKIP_BUILD" = 1 ]; then
    step "using the existing release binary"
else
    step "cargo build --release --bin miniauth"
    cargo build --release --bin miniauth
fi
BINARY="$REPO/target/release/miniauth"
[ -x "$BINARY" ] || { echo "$BINARY is missing: build it or drop --skip-build" >&2; exit 1; }

# --- schemathesis configuration ------------------------------------------------------------

# The spec's custom string formats, which JSON Schema cannot spell (it counts characters, not
# bytes). Only the valid values are drawn from them; invalid ones still come from the schema's
# types and bounds.
cat >"$WORK/hooks.py" <<'PYTHON'
import re

import schemathesis
from hypothesis import strategies as st

MIN_BYTES, MAX_BYTES = 8, 72


def utf8_size(text):
    return len(text.encode("utf-8"))


def first_72_bytes(text):
    """The longest prefix that fits in 72 bytes, cut between characters."""
    size = 0
    for end, character in enumerate(text):
        size += utf8_size(character)
        if size > MAX_BYTES:
            return text[:end]
    return text


def cannot_contain_a_username(text):
    """No run of 3 characters a username may have: no generated username is inside it."""
    return re.search(r"[A-Za-z0-9_.-]{3}", text) is None


# `bcrypt-password`: 8–72 bytes of UTF-8, any characters (NUL included): long ASCII and
# multi-byte passwords, and short ones whose characters make up 8 bytes or more. A password must
# not contain the username, which a schema cannot say: the generated ones cannot.
schemathesis.openapi.format(
    "bcrypt-password",
    st.one_of(
        st.text(st.characters(codec="utf-8"), min_size=MIN_BYTES, max_size=MAX_BYTES).map(first_72_bytes),
        st.text(st.characters(codec="utf-8", min_codepoint=0x80), min_size=2, max_size=7).filter(
            lambda text: utf8_size(text) >= MIN_BYTES
        ),
    ).filter(cannot_contain_a_username),
)
PYTHON

# Authentication is chosen here, explicitly: no automatic sign-up. Every warning fails the run
# (a token that never worked, data that could not be generated, …); the anonymous run expects
# every protected operation to answer 401, so there that one warning is off.
write_config() {
    local file=$1 display=$2 extra=${3:-}
    cat >"$file" <<TOML
hooks = "$WORK/hooks.py"

[auth]
auto-signup = false

[warnings]
$display
fail-on = true
$extra
TOML
}
ALL_WARNINGS='"missing_test_data", "base_url_mismatch", "validation_mismatch", "missing_deserializer",
           "unused_openapi_auth", "unsupported_regex", "method_not_allowed", "constants_extraction",
           "unmatched_filter", "unresolvable_reference", "rate_limited", "dictionary_mismatch",
           "timeout_units"'
# Sign-up's password has the custom format bcrypt-password, which the generator draws from the
# strategy above; a value it makes up to "violate" that format is often a good password, which
# sign-up rightly takes (201). Its refusals are the integration tests' (tests/it/api.rs). The
# anonymous run tests sign-up; the authenticated one leaves it out (it takes no token).
REGISTER='[[operations]]
include-name = "POST /auth/register"
checks.negative_data_rejection.enabled = false'
write_config "$WORK/anonymous.toml" "display = [$ALL_WARNINGS]" "$REGISTER"
write_config "$WORK/authenticated.toml" "display = [\"missing_auth\", $ALL_WARNINGS]"
write_config "$WORK/logout.toml" "display = [\"missing_auth\", $ALL_WARNINGS]"
# Revoking a session by its id, in a run where no session list tells the fuzzer a live id: every
# id it makes up is unknown (404, as it should be), which would raise missing_test_data.
# tests/it/contract.rs revokes real sessions.
write_config "$WORK/sessions.toml" "display = [\"missing_auth\", ${ALL_WARNINGS/\"missing_test_data\", /}]"
# The two operations that take a mailed link's token: one that is unknown, used or expired gets
# 400 with a clear message, and no schema can tell a live token from any other
# string, so there 400 answers schema-valid data too, and most generated data gets it (which
# would raise validation_mismatch). They run on their own with that allowed.
LINK_PATHS='^/auth/(email/confirm|password-reset/confirm)$'
# Likewise the end of adding a passkey: its ceremony comes from the start of one, and a made-up
# one is a bad request (400) whatever else the body holds. It runs on its own, signed in.
CEREMONY_PATHS='^/auth/passkeys/register/finish$'
write_config "$WORK/links.toml" "display = [${ALL_WARNINGS/\"validation_mismatch\", /}]" \
    '[checks.positive_data_acceptance]
expected-statuses = ["2xx", 400, 401, 403, 404, 409, 429]'
# Sign-in and refresh take the OAuth2 grants' forms too, whose refusals are OAuth2's: a made-up
# username and password, or refresh token, in a schema-valid form is refused with 400
# (invalid_grant), as RFC 6749 has it, where the JSON body gets 401. They run on their own with
# that allowed (tests/it/oauth2_clients.rs checks each refusal).
OAUTH2_FORM_PATHS='^/auth/(login|refresh)$'
write_config "$WORK/oauth2.toml" "display = [${ALL_WARNINGS/\"validation_mismatch\", /}]" \
    '[checks.positive_data_acceptance]
expected-statuses = ["2xx", 400, 401, 403, 404]'
write_config "$WORK/app.toml" "display = [\"missing_auth\", ${ALL_WARNINGS/\"validation_mismatch\", /}]" \
    '[checks.positive_data_acceptance]
expected-statuses = ["2xx", 400, 401]

[checks.negative_data_rejection]
enabled = false'


# --- the server ----------------------------------------------------------------------------

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts the release binary in a fresh working directory (its own data/ folder), with
# nothing configured (it carries its own defaults, templates and static files); extra
# VAR=value arguments go to its environment.
start_server() {
    local name=$1
    shift
    local dir="$WORK/$name"
    mkdir -p "$dir"
    SERVER_DIR=$dir
    SERVER_ENV=("$@")
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    LOG="$dir/server.log"
    (
        cd "$dir"
        # The strength estimator is off: schemathesis holds that schema-valid data is accepted,
        # and no JSON Schema says "not easily guessed" (tests/it/password_policy.rs covers it). The
        # throttle is off too: the fuzzer signs in and up thousands of times from one address
        # (tests/it/throttle.rs covers it). The public address names localhost, so that passkeys
        # are on.
        exec env -i PATH="$PATH" HOME="$dir" \
            ROCKET_PORT="$PORT" \
            ROCKET_PUBLIC_URL="http://localhost:$PORT" \
            ROCKET_PASSWORD_MIN_SCORE=0 \
            ROCKET_LOGIN_MAX_FAILURES_PAIR=0 \
            ROCKET_LOGIN_MAX_FAILURES_ADDRESS=0 \
            ROCKET_LOGIN_MAX_FAILURES_USER_HOUR=0 \
            ROCKET_REGISTER_MAX_PER_ADDRESS_HOUR=0 \
            ROCKET_BCRYPT_COST=4 \
            "$@" "$BINARY"
    ) >"$LOG" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 300); do
        curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; echo "the server exited" >&2; exit 1; }
        sleep 0.1
    done
    curl -fsS -o /dev/null "$BASE/readyz" || { cat "$LOG" >&2; echo "the server is not ready" >&2; exit 1; }
    echo "server on $BASE (pid $SERVER_PID, log $LOG)"
}

# Registers a new user and prints a fresh access token for it.
sign_in() {
    local username="fuzz_$RANDOM$RANDOM" password="fuzz-password-$RANDOM$RANDOM"
    local body="{\"username\":\"$username\",\"password\":\"$password\"}"
    curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$body" "$BASE/auth/register"
    curl -fsS -H 'Content-Type: application/json' -d "$body" "$BASE/auth/login" |
        "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

# Registers an OpenID Connect app with the command line (beside the server, on its database),
# allows it for a new user through the consent page, exchanges a code, and prints the app's
# Basic credentials and an access token of its own (for userinfo).
oidc_app() {
    local app
    app=$(cd "$SERVER_DIR" && env -i PATH="$PATH" HOME="$SERVER_DIR" ROCKET_PORT="$PORT" \
        ROCKET_PUBLIC_URL="http://localhost:$PORT" "${SERVER_ENV[@]}" \
        "$BINARY" client create Fuzz --redirect-uri https://app.example.com/cb --json 2>/dev/null)
    "$VENV/bin/python" - "$PORT" "$app" "$(sign_in)" <<'PYTHON'
import base64, hashlib, http.client, json, re, sys, urllib.parse

port, app, token = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
basic = base64.b64encode(f"{app['client_id']}:{app['client_secret']}".encode()).decode()
verifier = "v" * 43
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
query = {"client_id": app["client_id"], "redirect_uri": "https://app.example.com/cb", "response_type": "code",
         "scope": "openid profile email groups", "code_challenge": challenge, "code_challenge_method": "S256"}
conn = http.client.HTTPConnection("127.0.0.1", port)
cookie = f"miniauth_token={token}"
conn.request("GET", "/oauth/authorize?" + urllib.parse.urlencode(query), headers={"Cookie": cookie})
page = conn.getresponse()
html = page.read().decode()
csrf_cookie = next(v.split(";")[0] for k, v in page.getheaders() if k.lower() == "set-cookie" and "csrf" in v)
form = {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1), "decision": "allow"}
form.update({f"request.{k}": v for k, v in query.items()})
conn.request("POST", "/oauth/authorize/consent", body=urllib.parse.urlencode(form),
             headers={"Cookie": f"{cookie}; {csrf_cookie}", "Content-Type": "application/x-www-form-urlencoded"})
answer = conn.getresponse()
answer.read()
code = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.getheader("Location")).query)["code"][0]
body = {"grant_type": "authorization_code", "code": code, "redirect_uri": query["redirect_uri"], "code_verifier": verifier}
conn.request("POST", "/oauth/token", body=urllib.parse.urlencode(body),
             headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})
print(basic, json.loads(conn.getresponse().read())["access_token"])
PYTHON
}

# --- the runs ------------------------------------------------------------------------------

FAILED=()
# One schemathesis run with every check; any failure, error or warning marks it failed.
fuzz() {
    local label=$1 config=$2
    shift 2
    step "schemathesis: $label"
    local started=$SECONDS
    if (
        cd "$WORK"
        "$VENV/bin/schemathesis" --config-file "$config" run "$BASE/openapi.json" \
            --checks all \
            --max-examples "$MAX_EXAMPLES" \
            --seed "$SEED" \
            --generation-database none \
            --request-timeout 10 \
            --no-color \
            --report junit --report-dir "$WORK/reports/${label// /-}" \
            "$@"
    ); then
        echo "passed: $label ($((SECONDS - started)) s)"
    else
        echo "FAILED: $label ($((SECONDS - started)) s)"
        FAILED+=("$label")
    fi
}

# Every operation anonymous, then with a live bearer token (the operations that take none, the
# sign-up and the two ends of a sign-in, only anonymous: with a token, their only answers to
# made-up data are refusals). Logging out revokes the token, and so does revoking a session by
# its id once the fuzzer has read the token's own id from the session list: each gets a token of
# its own and a run of its own, after the others.
ENDING_PATHS='^/auth/(logout|sessions/\{id\})$'
# The endpoints OpenID Connect apps call take an app's credentials (Basic) or its access token,
# never a user's: they run on their own with those. A made-up code or refresh token is refused
# (400, invalid_grant) however well-formed, and a made-up client_id or client_secret in the form
# contradicts the Basic header (401, invalid_client), so both answer schema-valid data there; and
# a form's values are all text, so "a wrong type" is no negative data in them.
APP_PATHS='^/oauth/(token|revoke)$'
APP_TOKEN_PATHS='^/oauth/userinfo$'
# Disconnecting an app, in a run where no app is connected: every made-up id is unknown (404),
# as revoking a session by a made-up id is.
ID_PATHS='^/auth/(sessions/\{id\}|apps/\{client_id\})$'
fuzz_backend() {
    local backend=$1 token app
    fuzz "$backend anonymous" "$WORK/anonymous.toml" --exclude-path-regex "$LINK_PATHS|$CEREMONY_PATHS|$OAUTH2_FORM_PATHS"
    fuzz "$backend sign-in and refresh" "$WORK/oauth2.toml" --include-path-regex "$OAUTH2_FORM_PATHS"
    fuzz "$backend mailed links" "$WORK/links.toml" --include-path-regex "$LINK_PATHS"
    token=$(sign_in)
    fuzz "$backend authenticated" "$WORK/authenticated.toml" \
        -H "Authorization: Bearer $token" --exclude-path /auth/register \
        --exclude-path /auth/login/second-factor --exclude-path /auth/passkeys/login/finish \
        --exclude-path-regex "$LINK_PATHS|$CEREMONY_PATHS|$ENDING_PATHS|$APP_PATHS|$APP_TOKEN_PATHS|$ID_PATHS|$OAUTH2_FORM_PATHS"
    fuzz "$backend passkey ceremonies" "$WORK/links.toml" \
        -H "Authorization: Bearer $token" --include-path-regex "$CEREMONY_PATHS"
    token=$(sign_in)
    fuzz "$backend authenticated logout" "$WORK/logout.toml" \
        -H "Authorization: Bearer $token" --include-path /auth/logout
    token=$(sign_in)
    fuzz "$backend authenticated session revocation" "$WORK/sessions.toml" \
        -H "Authorization: Bearer $token" --include-path-regex "$ID_PATHS"
    read -r basic app_token < <(oidc_app)
    fuzz "$backend OpenID Connect app" "$WORK/app.toml" \
        -H "Authorization: Basic $basic" --include-path-regex "$APP_PATHS"
    fuzz "$backend OpenID Connect app token" "$WORK/authenticated.toml" \
        -H "Authorization: Bearer $app_token" --include-path-regex "$APP_TOKEN_PATHS"
    stop_server
    # Internal errors answer a bare 500 (which the checks catch) and log their cause: show it.
    if grep -Eq 'ERROR|panicked' "$LOG"; then
        echo "the $backend server logged errors:" >&2
        grep -E 'ERROR|panicked' "$LOG" | head -20 >&2
        FAILED+=("$backend server log")
    fi
}

start_server sqlite
fuzz_backend sqlite

if [ -n "${MINIAUTH_TEST_POSTGRES_URL:-}" ]; then
    PG_ADMIN_URL=$MINIAUTH_TEST_POSTGRES_URL
    PG_DB="miniauth_test_fuzz_$$_$RANDOM"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$PG_DB\""
    start_server postgres ROCKET_DATABASE_URL="${PG_ADMIN_URL%/*}/$PG_DB"
    fuzz_backend postgres
fi

if [ "${#FAILED[@]}" -gt 0 ]; then
    step "schemathesis FAILED: ${FAILED[*]}"
    exit 1
fi
step "schemathesis passed: every operation, every check, anonymous and authenticated"
