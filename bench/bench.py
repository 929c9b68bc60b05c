#!/usr/bin/env python3
"""MiniAuth benchmark: one command, one table.

Builds the release binary, starts MiniAuth on a fresh database (SQLite, or PostgreSQL with
--postgres URL), drives it on loopback with wrk and prints one table. The same run measures the
trivial /healthz route as a ceiling and one bcrypt verification at the configured cost, so each
figure also shows as a ratio that holds on a noisy machine. With --peer PATH it runs the same
phases against the FastAPI service whose folder is PATH (its requirements.txt is installed into a
virtualenv, then its run.sh starts it).

    python3 bench/bench.py                      # MiniAuth on SQLite
    python3 bench/bench.py --peer PATH          # and the FastAPI service in PATH, same phases
    python3 bench/bench.py --postgres postgres://postgres@127.0.0.1:5432/postgres
    python3 bench/bench.py --scale [--postgres URL]   # then again on 1M users, 1M sessions,
                                                      # 3M spent refresh tokens
    python3 bench/bench.py --flood              # only the flood phase (below)

A forward-auth phase asks GET /authz/auth-request (a browser's session cookie) as a reverse
proxy on 127.0.0.1 would, about app.example.com, against the same ceiling. A last phase finishes
4,000 two-step sign-ins (POST /auth/login/second-factor with recovery codes) from 8 clients, on
an instance of its own; their password steps run before it, so no bcrypt is in the figure. And
4,000 passkey sign-ins (start + finish, no username) from 8 Rust clients (the example
`passkey_client`), on an instance of its own named localhost, beside the password sign-in.
OpenID Connect: the token endpoint exchanging authorization codes (made beforehand through the
authorization endpoint, consent remembered) and userinfo, each at 16 connections, beside the
profile route.

Throttling is on with its defaults, except the per-address sign-up limit (the 200 concurrent
registrations come from one address). A separate phase storms wrong passwords over 1,000 names
from 50 addresses (X-Forwarded-For from a trusted 127.0.0.1) on an instance at bcrypt cost 4, so
that the addresses are blocked within seconds, and times the profile probe and a blocked answer.

--flood runs only a phase of its own: 5,000 connections that each send half a request and wait
(slowloris), held 30 s, with the profile probe at 20 req/s (a new connection each), first
directly against MiniAuth, then through the front proxy of docs/operations.md (Debian's nginx,
the docs' configuration with the ports substituted), each on an instance of its own: MiniAuth's
RSS at 0, 1,000 and 5,000 connections and its peak, the probe, and who ended the flood's
connections when. It raises its limit on open files (MiniAuth and nginx inherit it).

Needs: cargo, wrk (apt-get install wrk), python3 (standard library only); nginx for --flood.
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import json
import math
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORES = os.cpu_count() or 1


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kwargs).stdout


# --- HTTP helpers (one connection per call unless a connection is given) -------------------

def request(port, method, path, body=None, headers=None, timeout=300):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = dict(headers or {})
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_until_up(port, path, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            request(port, "GET", path, timeout=2)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start")


def rss_kb(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


# --- wrk ------------------------------------------------------------------------------------

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk(url, connections, seconds, headers=(), script=None, env=None):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency"]
    for header in headers:
        cmd += ["-H", header]
    if script:
        cmd += ["-s", script]
    out = run(cmd + [url], env={**os.environ, **(env or {})})
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        result[f"p{pct}"] = float(match.group(1)) * UNITS[match.group(2)] if match else None
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = int(errors.group(1)) if errors else 0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = socket_errors.group(1) if socket_errors else ""
    statuses = re.search(r"^STATUSES(.*)$", out, re.M)
    result["statuses"] = statuses.group(1).strip() if statuses else ""
    return result


# --- phases ---------------------------------------------------------------------------------

def probe(port, token, rate, seconds):
    """GET /auth/profile on a fixed schedule over one keep-alive connection; latencies in ms."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, failures = [], 0
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent = time.perf_counter()
        conn.request("GET", "/auth/profile", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - sent) * 1000)
        failures += response.status != 200
    conn.close()
    latencies.sort()
    nearest = lambda p: latencies[max(0, math.ceil(p / 100 * len(latencies)) - 1)]
    return {"p50": nearest(50), "p99": nearest(99), "max": latencies[-1], "failures": failures}


def concurrent_registrations(port, count, prefix):
    """`count` registrations of distinct names fired at once, one connection each."""
    statuses = [None] * count
    barrier = threading.Barrier(count)

    def register(i):
        barrier.wait()
        try:
            statuses[i], _ = request(port, "POST", "/auth/register",
                                     {"username": f"{prefix}{i}", "password": f"quiet lantern trombone {i}"})
        except OSError as e:
            statuses[i] = type(e).__name__

    threads = [threading.Thread(target=register, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    tally = {}
    for status in statuses:
        tally[status] = tally.get(status, 0) + 1
    return tally, elapsed


def refresh_phase(port, user, password, seconds, connections=16):
    """Refresh-token exchanges: each answer's new token is presented by a later request."""
    tokens = []
    for _ in range(connections + 8):
        status, body = request(port, "POST", "/auth/login", {"username": user, "password": password})
        assert status == 200, f"login answered {status}"
        tokens.append(json.loads(body)["refresh_token"])
    with tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False) as pool:
        pool.write("\n".join(tokens) + "\n")
    try:
        return wrk(f"http://127.0.0.1:{port}/auth/refresh", connections, seconds,
                   script=os.path.join(REPO, "bench", "refresh.lua"), env={"BENCH_TOKENS": pool.name})
    finally:
        os.unlink(pool.name)


def oidc_phase(target, user, password, seconds, codes=12000, connections=16):
    """OpenID Connect: the token endpoint exchanging authorization codes (each once: an ID token
    signed RS256, a grant and an access token stored), then userinfo with one access token, each
    at `connections` connections. The app is registered with the command line; `user` allows it
    once on the consent page; the codes are asked for beforehand (GET /oauth/authorize, the
    browser's cookie, consent remembered), all with one PKCE verifier."""
    base, redirect = f"http://127.0.0.1:{target.port}", "https://app.example.com/cb"
    made = json.loads(run([target.cmd[0], "client", "create", "Bench", "--redirect-uri", redirect, "--json"],
                          env=target.env, cwd=target.cwd))
    basic = base64.b64encode(f"{made['client_id']}:{made['client_secret']}".encode()).decode()
    verifier = "v" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    status, body = request(target.port, "POST", "/auth/login", {"username": user, "password": password})
    assert status == 200, f"login answered {status}"
    cookie = f"miniauth_token={json.loads(body)['access_token']}"
    query = urllib.parse.urlencode({"client_id": made["client_id"], "redirect_uri": redirect, "response_type": "code",
                                    "scope": "openid profile", "code_challenge": challenge,
                                    "code_challenge_method": "S256"})
    # Consent, once, on the page: its CSRF token is bound to the cookie the page sets.
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
    conn.request("GET", f"/oauth/authorize?{query}", headers={"Cookie": cookie})
    page = conn.getresponse()
    html = page.read().decode()
    csrf_cookie = next(v.split(";")[0] for k, v in page.getheaders() if k.lower() == "set-cookie" and "csrf" in v)
    form = {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1), "decision": "allow"}
    form.update({f"request.{k}": v for k, v in urllib.parse.parse_qsl(query)})
    conn.request("POST", "/oauth/authorize/consent", body=urllib.parse.urlencode(form),
                 headers={"Cookie": f"{cookie}; {csrf_cookie}", "Content-Type": "application/x-www-form-urlencoded"})
    answered = conn.getresponse()
    answered.read()
    assert answered.status == 303, f"consent answered {answered.status}"
    conn.close()
    log(f"{target.name}: {codes} authorization codes (GET /oauth/authorize, consent remembered)")
    pool, lock = [], threading.Lock()

    def ask(count):
        conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
        for _ in range(count):
            conn.request("GET", f"/oauth/authorize?{query}", headers={"Cookie": cookie})
            response = conn.getresponse()
            response.read()
            code = urllib.parse.parse_qs(urllib.parse.urlsplit(response.getheader("Location")).query)["code"][0]
            with lock:
                pool.append(code)
        conn.close()

    workers = [threading.Thread(target=ask, args=(codes // 8,)) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with tempfile.NamedTemporaryFile("w", suffix=".codes", delete=False) as file:
        file.write("\n".join(pool) + "\n")
    try:
        log(f"{target.name}: POST /oauth/token (authorization_code), {connections} connections, {seconds} s")
        token = wrk(f"{base}/oauth/token", connections, seconds, script=os.path.join(REPO, "bench", "oidc_token.lua"),
                    env={"BENCH_CODES": file.name, "BENCH_BASIC": basic, "BENCH_REDIRECT": redirect,
                         "BENCH_VERIFIER": verifier})
    finally:
        os.unlink(file.name)
    token["codes"] = len(pool)
    # A fresh code for userinfo's access token (every code above may have been spent).
    ask(1)
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
    body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": pool[-1], "redirect_uri": redirect,
                                   "code_verifier": verifier})
    conn.request("POST", "/oauth/token", body=body,
                 headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})
    access = json.loads(conn.getresponse().read())["access_token"]
    conn.close()
    log(f"{target.name}: GET /oauth/userinfo, {connections} connections, {seconds} s")
    userinfo = wrk(f"{base}/oauth/userinfo", connections, seconds, headers=[f"Authorization: Bearer {access}"])
    return {"token": token, "userinfo": userinfo}


def storm_phase(target, seconds):
    """Wrong passwords over 1,000 names from 50 addresses, with the profile probe; then the cost
    of a blocked answer, alone on one connection."""
    user, password = f"probe{uuid.uuid4().hex[:8]}", "quiet lantern trombone"
    assert request(target.port, "POST", "/auth/register", {"username": user, "password": password})[0] == 201
    status, body = request(target.port, "POST", "/auth/login", {"username": user, "password": password})
    assert status == 200, f"login answered {status}"
    token = json.loads(body)["access_token"]
    url = f"http://127.0.0.1:{target.port}/auth/login"
    script = os.path.join(REPO, "bench", "storm.lua")
    log(f"storm: wrong passwords, 1,000 names × 50 addresses, 8 connections, {seconds} s, probe from 3 s")
    storm = {}
    runner = threading.Thread(target=lambda: storm.update(wrk(url, 8, seconds, script=script)))
    runner.start()
    time.sleep(3)
    results = {"probe": probe(target.port, token, 20, min(10, seconds - 4))}
    runner.join()
    results["storm"] = storm
    log("storm: a blocked answer, 1 connection, 5 s")
    results["blocked"] = wrk(url, 1, 5, script=script, env={"BENCH_BLOCKED": "1"})
    return results


def seed_scale(target, postgres_url, work):
    """1,000,000 users (one precomputed bcrypt hash), 1,000,000 live sessions and 3,000,000 spent
    refresh tokens, in bulk SQL; returns the seconds it took."""
    started = time.perf_counter()
    now = int(time.time())
    statements = [
        # The hash of a user the benchmark registered: one bcrypt for a million rows.
        "INSERT INTO users (username, username_key, password_hash, created_at) "
        "SELECT 'scale' || x, 'scale' || x, (SELECT password_hash FROM users ORDER BY id LIMIT 1), {now} "
        "FROM {series}",
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, address) "
        "SELECT 'scale-session-' || x, (SELECT MIN(id) FROM users WHERE username LIKE 'scale%') + x - 1, "
        "{now}, {now}, {now} + 2592000, 'bench', '192.0.2.1' FROM {series}",
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at) "
        "SELECT 'scale-token-' || x || '-' || k.k, 'scale-session-' || x, {now} - 3600, {now} - 3600 "
        "FROM {series} CROSS JOIN (SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 3) AS k",
    ]
    if postgres_url:
        series = "generate_series(1, 1000000) AS s(x)"
        for sql in statements:
            run(["psql", postgres_url, "-qc", sql.format(now=now, series=series)])
        run(["psql", postgres_url, "-qc", "VACUUM ANALYZE"])
    else:
        series = ("(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) "
                  "SELECT x FROM c) AS s")
        with sqlite3.connect(os.path.join(target.cwd, "data", "miniauth.db")) as db:
            for sql in statements:
                db.execute(sql.format(now=now, series=series))
            db.execute("ANALYZE")
    return time.perf_counter() - started


def database_bytes(target, postgres_url):
    if postgres_url:
        return int(run(["psql", postgres_url, "-Atc", "SELECT pg_database_size(current_database())"]).strip())
    data = os.path.join(target.cwd, "data")
    return sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data) if f.startswith("miniauth.db"))


class Target:
    """A server under test: how to start it and how to count its users."""

    def __init__(self, name, port, cmd, env, cwd, count_users, health_path):
        self.name, self.port, self.cmd, self.env, self.cwd = name, port, cmd, env, cwd
        self.count_users, self.health_path = count_users, health_path
        self.process = None

    def start(self):
        self.log = open(os.path.join(self.cwd, "server.log"), "w")
        self.process = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_until_up(self.port, self.health_path)
        return self

    def pid(self):
        """The serving process (the peer's run.sh execs uvicorn, so it is the same pid)."""
        return self.process.pid

    def stop(self):
        if self.process:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
            self.log.close()
            kept = os.path.join(REPO, "target", f"bench-{self.name.lower()}.log")
            shutil.copyfile(self.log.name, kept)
            log(f"{self.name} log kept in {kept}")


def measure(target, seconds, ceiling):
    results = {}
    user, password = f"bench{uuid.uuid4().hex[:8]}", "quiet lantern trombone"
    status, _ = request(target.port, "POST", "/auth/register", {"username": user, "password": password})
    assert status == 201, f"register answered {status}"
    status, body = request(target.port, "POST", "/auth/login", {"username": user, "password": password})
    assert status == 200, f"login answered {status}"
    token = json.loads(body)["access_token"]
    base = f"http://127.0.0.1:{target.port}"
    bearer = f"Authorization: Bearer {token}"

    log(f"{target.name}: warm-up")
    wrk(f"{base}/auth/profile", 32, 3, headers=[bearer])
    if ceiling:
        log(f"{target.name}: ceiling GET /healthz, 64 connections, {seconds} s")
        results["ceiling"] = wrk(f"{base}/healthz", 64, seconds)
    for connections in (32, 64):
        log(f"{target.name}: GET /auth/profile, {connections} connections, {seconds} s")
        results[f"profile{connections}"] = wrk(f"{base}/auth/profile", connections, seconds, headers=[bearer])

    if target.name == "MiniAuth":
        # What a reverse proxy asks before each request to a protected app (forward auth), with
        # a browser's session cookie.
        log(f"{target.name}: GET /authz/auth-request (cookie), 64 connections, {seconds} s")
        asked = [f"Cookie: miniauth_token={token}", "X-Original-Method: GET",
                 "X-Original-URL: https://app.example.com/dashboard?panel=1"]
        results["forward_auth"] = wrk(f"{base}/authz/auth-request", 64, seconds, headers=asked)

    log(f"{target.name}: profile probe alone, 20 req/s, 10 s")
    results["probe_alone"] = probe(target.port, token, 20, 10)
    log(f"{target.name}: POST /auth/login, 8 connections, {seconds} s, with the probe from 3 s")
    # As many accounts as connections: one account's checks in flight at once count against
    # its pair's limit, as parallel guesses would.
    users = [f"{user}x{n}" for n in range(8)]
    for name in users:
        status, _ = request(target.port, "POST", "/auth/register", {"username": name, "password": password})
        assert status == 201, f"register answered {status}"
    storm = {}
    runner = threading.Thread(target=lambda: storm.update(wrk(
        f"{base}/auth/login", 8, seconds, script=os.path.join(REPO, "bench", "login.lua"),
        env={"BENCH_USERS": ",".join(users), "BENCH_PASSWORD": password})))
    runner.start()
    time.sleep(3)
    results["probe_storm"] = probe(target.port, token, 20, min(10, seconds - 4))
    runner.join()
    results["login"] = storm

    if target.name == "MiniAuth":
        log(f"{target.name}: POST /auth/refresh, 16 connections, {seconds} s")
        results["refresh"] = refresh_phase(target.port, user, password, seconds)
        results["oidc"] = oidc_phase(target, user, password, seconds)

    log(f"{target.name}: 200 concurrent distinct registrations")
    prefix = f"c{uuid.uuid4().hex[:6]}_"
    tally, elapsed = concurrent_registrations(target.port, 200, prefix)
    results["register200"] = {"tally": tally, "seconds": elapsed, "rows": target.count_users(prefix)}
    results["rss_kb"] = rss_kb(target.pid())
    return results


def totp(secret, at):
    """The code an authenticator app with this base32 secret shows at `at` (RFC 6238, SHA-1, 6
    digits, 30 s): the bench plays the user's phone."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


def second_step_phase(target, users=400, connections=8):
    """POST /auth/login/second-factor: `users` accounts with two-step sign-in, each signed in with
    the password once per recovery code (bcrypt at the instance's cost, before the phase), then
    every waiting sign-in finished with a recovery code from `connections` keep-alive clients at
    once. Each answer is a new session: the phase is the second step alone, no bcrypt in it."""
    password = "quiet lantern trombone"
    rounds = [[] for _ in range(10)]
    log(f"second step: {users} accounts with two-step sign-in, {users * 10} waiting sign-ins")
    for i in range(users):
        name = f"mfa{uuid.uuid4().hex[:8]}"
        credentials = {"username": name, "password": password}
        assert request(target.port, "POST", "/auth/register", credentials)[0] == 201
        status, body = request(target.port, "POST", "/auth/login", credentials)
        assert status == 200, f"login answered {status}"
        bearer = {"Authorization": f"Bearer {json.loads(body)['access_token']}"}
        status, body = request(target.port, "POST", "/auth/totp", {"password": password}, bearer)
        assert status == 200, f"totp answered {status}"
        code = totp(json.loads(body)["secret"], time.time())
        status, body = request(target.port, "POST", "/auth/totp/confirm", {"code": code}, bearer)
        assert status == 200, f"totp/confirm answered {status}: {body}"
        for n, recovery_code in enumerate(json.loads(body)["recovery_codes"]):
            status, body = request(target.port, "POST", "/auth/login", credentials)
            assert status == 403, f"login answered {status}"
            rounds[n].append(json.dumps({"mfa_token": json.loads(body)["mfa_token"], "code": recovery_code}))
    # Round by round, so that the clients finish different accounts' sign-ins at once: one
    # account's checks in flight together count against its pair's limit, as guesses would.
    bodies = [body for round in rounds for body in round]
    latencies, statuses = [], {}
    lock = threading.Lock()

    def client(share):
        conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
        mine = []
        for body in share:
            sent = time.perf_counter()
            conn.request("POST", "/auth/login/second-factor", body=body,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            mine.append(((time.perf_counter() - sent) * 1000, response.status))
        conn.close()
        with lock:
            for latency, status in mine:
                latencies.append(latency)
                statuses[status] = statuses.get(status, 0) + 1

    log(f"second step: {len(bodies)} sign-ins finished by {connections} clients")
    threads = [threading.Thread(target=client, args=(bodies[n::connections],)) for n in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    nearest = lambda p: latencies[max(0, math.ceil(p / 100 * len(latencies)) - 1)]
    return {"rps": len(latencies) / elapsed, "p50": nearest(50), "p99": nearest(99),
            "statuses": " ".join(f"{code}={count}" for code, count in sorted(statuses.items())),
            "non2xx": sum(count for code, count in statuses.items() if code != 200)}


def passkey_phase(target, sign_ins=4000, connections=8):
    """POST /auth/passkeys/login/start + /finish: `sign_ins` sign-ins with passkeys alone (no
    username, no password, no bcrypt) from `connections` keep-alive clients, each signing with
    its own accounts' software passkeys (ES256). The clients are the example `passkey_client`,
    in Rust, so that the signing does not bound the figure."""
    log(f"passkeys: {sign_ins} sign-ins (start + finish) by {connections} clients")
    client = os.path.join(REPO, "target", "release", "examples", "passkey_client")
    origin = f"http://localhost:{target.port}"
    return json.loads(run([client, str(target.port), origin, str(sign_ins), str(connections)]))


# --- floods ---------------------------------------------------------------------------------

FLOOD_REQUEST = b"GET /auth/profile HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def front_nginx_configs():
    """The front proxy's nginx configuration as docs/operations.md gives it: the main context
    (worker_connections) and MiniAuth's site (limit_conn, timeouts, upstream)."""
    with open(os.path.join(REPO, "docs", "operations.md")) as page:
        blocks = re.findall(r"```nginx\n(.*?)```", page.read(), re.S)
    main = next(block for block in blocks if "worker_connections" in block)
    site = next(block for block in blocks if "limit_conn_zone" in block)
    return main, site


def replaced(text, old, new):
    """`text` with `old` replaced; `old` must be there (the docs' text changed otherwise)."""
    if old not in text:
        raise SystemExit(f"docs/operations.md's front proxy has no {old!r} any more")
    return text.replace(old, new)


class FrontNginx:
    """Debian's nginx with the docs' front-proxy configuration, ports substituted: in the
    foreground, one process (as the tests run it), its own prefix, stopped by its PID."""

    def __init__(self, work, port, upstream):
        self.work, self.port, self.process = work, port, None
        main, site = front_nginx_configs()
        site = replaced(site, "127.0.0.1:8000", f"127.0.0.1:{upstream}")
        site = replaced(site, "listen 80;", f"listen 127.0.0.1:{port};")
        site = replaced(site, "server_name auth.example.com;", "server_name 127.0.0.1;")
        temp = "\n".join(f"    {name} {work}/{name};" for name in
                         ("client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path",
                          "scgi_temp_path"))
        os.makedirs(work, exist_ok=True)
        self.log_path = os.path.join(work, "error.log")
        # info: nginx logs each connection it ends for a timeout ("client timed out").
        with open(os.path.join(work, "nginx.conf"), "w") as conf:
            conf.write(f"daemon off;\nmaster_process off;\nuser root;\npid {work}/nginx.pid;\n"
                       f"error_log {self.log_path} info;\n{main}\nhttp {{\n    access_log off;\n{temp}\n{site}}}\n")

    def start(self):
        self.process = subprocess.Popen(["nginx", "-p", self.work, "-c", os.path.join(self.work, "nginx.conf"),
                                         "-e", self.log_path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_until_up(self.port, "/healthz")

    def pid(self):
        return self.process.pid

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def ended(self):
        """What nginx's log says it ended: connections timed out reading a header, refused by
        limit_conn, and refused for want of worker_connections."""
        with open(self.log_path, errors="replace") as log_file:
            text = log_file.read()
        return {"header_timeout": len(re.findall(r"client timed out .* while reading client request headers", text)),
                "limit_conn": text.count("limiting connections by zone"),
                "worker_connections": text.count("worker_connections are not enough")}


def sockets_of(pid):
    """How many sockets process `pid` holds open."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def rss_now_kb(pid):
    return rss_kb(pid)[1]


def steady_rss_kb(pid, seconds=10):
    """VmRSS once two samples half a second apart differ by less than 64 kB (or after `seconds`)."""
    deadline, last = time.time() + seconds, rss_now_kb(pid)
    while time.time() < deadline:
        time.sleep(0.5)
        now = rss_now_kb(pid)
        if abs(now - last) < 64:
            return now
        last = now
    return last


class Flood:
    """Connections that each send half a request (the request line and `Host`, never the blank
    line that ends the header) and then wait; who ends them, and when, is recorded."""

    def __init__(self, port):
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.opened, self.refused, self.ended = 0, {}, {}

    def open(self, count):
        """Opens `count` more; after 20 failures in a row (a server that no longer accepts),
        the rest are given up."""
        failures = 0
        for n in range(count):
            if failures == 20:
                self.refused["given up"] = self.refused.get("given up", 0) + count - n
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.settimeout(3)
                sock.connect(("127.0.0.1", self.port))
                sock.sendall(FLOOD_REQUEST)
                sock.setblocking(False)
            except OSError as e:
                self.refused[type(e).__name__] = self.refused.get(type(e).__name__, 0) + 1
                sock.close()
                failures += 1
                continue
            failures = 0
            self.selector.register(sock, selectors.EVENT_READ, time.perf_counter())
            self.opened += 1

    def watch(self, seconds):
        """Notes every connection the other side ends within `seconds`: closed (FIN), reset
        (RST) or answered (an HTTP status, then closed)."""
        deadline = time.perf_counter() + seconds
        while (left := deadline - time.perf_counter()) > 0:
            for key, _ in self.selector.select(timeout=min(left, 0.5)):
                sock, opened = key.fileobj, key.data
                try:
                    data = sock.recv(4096)
                    how = f"answered {data.split(b' ')[1].decode(errors='replace')}" if data else "closed"
                except BlockingIOError:
                    continue
                except OSError as e:
                    how = "reset" if isinstance(e, ConnectionResetError) else type(e).__name__
                self.ended.setdefault(how, []).append(time.perf_counter() - opened)
                self.selector.unregister(sock)
                sock.close()

    def still_open(self):
        return len(self.selector.get_map())

    def close(self):
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fileobj)
            key.fileobj.close()
        self.selector.close()


def fresh_probe(port, token, rate, seconds, results):
    """GET /auth/profile on a fixed schedule, each on a new connection (as a new visitor would
    come: a flood of connections may well stop those first); status or error, and latency. A
    slot more than a second past while an earlier probe waited out its timeout is not sent, and
    counts as not answered, so the probe ends on time."""
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1:
            results.append(("not sent", 0))
            continue
        sent = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/auth/profile", headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            response.read()
            outcome = response.status
        except OSError as e:
            outcome = type(e).__name__
        finally:
            conn.close()
        results.append((outcome, (time.perf_counter() - sent) * 1000))


def flood_run(target, front, size, hold, steps=(1000,)):
    """MiniAuth (`target`) flooded with `size` half-sent requests, directly or through `front`,
    held `hold` seconds with the profile probe at 20 req/s; RSS at 0, each of `steps` and
    `size` connections, once steady."""
    user, password = f"flood{uuid.uuid4().hex[:8]}", "quiet lantern trombone"
    assert request(target.port, "POST", "/auth/register", {"username": user, "password": password})[0] == 201
    status, body = request(target.port, "POST", "/auth/login", {"username": user, "password": password})
    assert status == 200, f"login answered {status}"
    token = json.loads(body)["access_token"]
    port = front.port if front else target.port
    # The profile once through the way the probe takes, so the idle figure is a serving one.
    assert request(port, "GET", "/auth/profile", headers={"Authorization": f"Bearer {token}"})[0] == 200
    pid, front_pid = target.pid(), front.pid() if front else None
    result = {"rss_steps": [(0, steady_rss_kb(pid), front_pid and steady_rss_kb(front_pid))]}
    flood = Flood(port)
    try:
        for count in (*steps, size):
            flood.open(count - flood.opened - sum(flood.refused.values()))
            result["rss_steps"].append((count, steady_rss_kb(pid), front_pid and steady_rss_kb(front_pid)))
        log(f"{'nginx' if front else 'direct'}: {flood.opened} half-sent requests open "
            f"({sum(flood.refused.values())} refused); held {hold} s with the probe at 20 req/s")
        probes = []
        prober = threading.Thread(target=fresh_probe, args=(port, token, 20, hold, probes))
        prober.start()
        most_sockets = sockets_of(pid)
        held_until = time.perf_counter() + hold
        while time.perf_counter() < held_until:
            flood.watch(min(1.0, held_until - time.perf_counter()))
            most_sockets = max(most_sockets, sockets_of(pid))
        prober.join()
        result.update(opened=flood.opened, refused=dict(flood.refused), still_open=flood.still_open(),
                      ended={how: sorted(times) for how, times in flood.ended.items()},
                      most_sockets=most_sockets, probes=probes, hwm_kb=rss_kb(pid)[0],
                      front_hwm_kb=front_pid and rss_kb(front_pid)[0])
    finally:
        flood.close()
    # What MiniAuth keeps once the flood's connections are gone (glibc keeps freed memory).
    result["rss_after_kb"] = steady_rss_kb(pid)
    if front:
        result["front_ended"] = front.ended()
    return result


def flood_phase(args, work, extra_env):
    """--flood: 5,000 half-sent requests held 30 s with the profile probe, directly against
    MiniAuth and through the docs' nginx front proxy, each on an instance of its own."""
    size, hold = args.flood_size, args.flood_seconds
    needed = size + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"--flood needs {needed} open files; the hard limit is {hard} (ulimit -Hn)")
        # MiniAuth and nginx inherit it: each holds the flood's connections.
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    if not shutil.which("nginx"):
        raise SystemExit("nginx is missing: apt-get install nginx")
    results = {}
    for name, offset in (("direct", 5), ("nginx", 6)):
        target = miniauth(os.path.join(work, f"flood-{name}"), args.port + offset, 4, args.postgres, extra_env)
        os.makedirs(target.cwd)
        front = FrontNginx(os.path.join(work, "nginx"), args.port + 7, target.port) if name == "nginx" else None
        try:
            target.start()
            if front:
                front.start()
            results[name] = flood_run(target, front, size, hold)
        finally:
            if front:
                front.stop()
            target.stop()
    return results


def report_flood(results, size, hold):
    direct, nginx = results["direct"], results["nginx"]

    def mb(kb):
        return f"{kb / 1024:.1f} MB"

    def probe_cell(r):
        answered = [ms for outcome, ms in r["probes"] if outcome == 200]
        others = {}
        for outcome, _ in r["probes"]:
            if outcome != 200:
                others[outcome] = others.get(outcome, 0) + 1
        answered.sort()
        if not answered:
            return f"0 of {len(r['probes'])} answered {others}"
        nearest = lambda p: answered[max(0, math.ceil(p / 100 * len(answered)) - 1)]
        extra = f" (others: {others})" if others else ""
        return (f"{len(answered)} of {len(r['probes'])} answered 200{extra}, p50 {nearest(50):.2f} ms, "
                f"p99 {nearest(99):.2f} ms, max {answered[-1]:.2f} ms")

    def probe_ok(r):
        answered = sorted(ms for outcome, ms in r["probes"] if outcome == 200)
        return (len(answered) == len(r["probes"]) and answered
                and answered[max(0, math.ceil(0.99 * len(answered)) - 1)] <= 100)

    def ended_cell(r, front_name):
        parts = []
        for how, times in sorted(r["ended"].items()):
            parts.append(f"{len(times):,} {how} by {front_name} after {times[0]:.1f}–{times[-1]:.1f} s")
        if r["refused"]:
            parts.append(f"refused at connect: {r['refused']}")
        parts.append(f"{r['still_open']:,} still open after {hold} s")
        return f"{r['opened']:,} opened: " + "; ".join(parts)

    print(f"\nFloods: {size:,} half-sent requests (\"GET /auth/profile HTTP/1.1\\r\\nHost: …\\r\\n\" and nothing "
          f"more) held {hold} s from 127.0.0.1, the profile probe at 20 req/s (bearer, a new connection each), "
          f"{CORES} cores, release build:\n")
    print("| figure | directly | through the docs' nginx | target | |")
    print("|---|---|---|---|---|")
    ok = nginx["hwm_kb"] <= 48 * 1024
    print(f"| MiniAuth peak RSS (VmHWM) | {mb(direct['hwm_kb'])} | {mb(nginx['hwm_kb'])} | ≤ 48 MB through nginx | "
          f"{'PASS' if ok else 'MISS'} |")
    steps = lambda r: ", ".join(f"{count:,}: {mb(kb)}" for count, kb, _ in r["rss_steps"])
    print(f"| MiniAuth RSS at 0 / 1,000 / {size:,} connections, steady | {steps(direct)} | {steps(nginx)} | | |")
    per = lambda r: (r["rss_steps"][-1][1] - r["rss_steps"][0][1]) * 1024 / size
    print(f"| MiniAuth memory per held connection | {per(direct):,.0f} bytes | {per(nginx):,.0f} bytes | | |")
    print(f"| MiniAuth RSS once the flood's connections are gone | {mb(direct['rss_after_kb'])} | "
          f"{mb(nginx['rss_after_kb'])} | | |")
    print(f"| sockets MiniAuth held at most | {direct['most_sockets']:,} | {nginx['most_sockets']:,} | | |")
    ok = probe_ok(direct) and probe_ok(nginx)
    print(f"| profile probe | {probe_cell(direct)} | {probe_cell(nginx)} | every probe answered, p99 ≤ 100 ms | "
          f"{'PASS' if probe_ok(nginx) else 'MISS'} (nginx), {'PASS' if probe_ok(direct) else 'MISS'} (direct) |")
    print(f"| the flood's connections | {ended_cell(direct, 'MiniAuth')} | {ended_cell(nginx, 'nginx')} | | |")
    said = nginx.get("front_ended", {})
    print(f"| nginx's log: ended for | | header timeout {said.get('header_timeout', 0):,}, limit_conn "
          f"{said.get('limit_conn', 0):,}, worker_connections {said.get('worker_connections', 0):,} | | |")
    front_steps = ", ".join(f"{count:,}: {mb(kb)}" for count, _, kb in nginx["rss_steps"])
    print(f"| nginx RSS at 0 / 1,000 / {size:,} connections; peak | | {front_steps}; peak "
          f"{mb(nginx['front_hwm_kb'])} | | |")


# --- targets --------------------------------------------------------------------------------

def miniauth(work, port, cost, postgres, extra_env):
    env = {
        "PATH": os.environ["PATH"],
        "ROCKET_PROFILE": "release",
        "ROCKET_CONFIG": os.path.join(REPO, "Rocket.toml"),
        "ROCKET_TEMPLATE_DIR": os.path.join(REPO, "templates"),
        "ROCKET_STATIC_DIR": os.path.join(REPO, "static"),
        "ROCKET_PORT": str(port),
        # The release profile refuses to start without it (links in mails are built from it).
        "ROCKET_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ROCKET_BCRYPT_COST": str(cost),
        # The 200 concurrent registrations come from one address; every other limit stays on.
        "ROCKET_REGISTER_MAX_PER_ADDRESS_HOUR": "0",
        # The storm's 50 addresses arrive as X-Forwarded-For from this machine, and the
        # forward-auth questions come from a "proxy" here about app.example.com.
        "ROCKET_TRUSTED_PROXIES": '["127.0.0.1/32"]',
        "ROCKET_FORWARD_AUTH_DOMAINS": '["app.example.com"]',
        # Registration is open: the host must say whom it admits (here, everyone signed in).
        "ROCKET_FORWARD_AUTH": '{hosts={"app.example.com"={any_signed_in=true}}}',
        "RUST_LOG": os.environ.get("RUST_LOG", "warn,miniauth=info"),
        **extra_env,
    }
    if postgres:
        database = f"miniauth_bench_{os.getpid()}"
        subprocess.run(["psql", postgres, "-qc", f"DROP DATABASE IF EXISTS {database}"], check=True)
        subprocess.run(["psql", postgres, "-qc", f"CREATE DATABASE {database}"], check=True)
        url = f"{postgres.rsplit('/', 1)[0]}/{database}"
        env["ROCKET_DATABASE_URL"] = url

        def count_users(prefix):
            sql = f"SELECT COUNT(*) FROM users WHERE username LIKE '{prefix}%'"
            return int(run(["psql", url, "-Atc", sql]).strip())
    else:
        def count_users(prefix):
            with sqlite3.connect(os.path.join(work, "data", "miniauth.db")) as db:
                return db.execute("SELECT COUNT(*) FROM users WHERE username LIKE ?", (prefix + "%",)).fetchone()[0]
    binary = os.path.join(REPO, "target", "release", "miniauth")
    target = Target("MiniAuth", port, [binary], env, work, count_users, "/healthz")
    target.database_url = env.get("ROCKET_DATABASE_URL")
    return target


def peer_folder(path):
    """The absolute path of the FastAPI service given to --peer, checked before any work starts."""
    folder = os.path.abspath(path)
    for needed in ("requirements.txt", "run.sh"):
        if not os.path.isfile(os.path.join(folder, needed)):
            raise SystemExit(f"--peer {path}: no {needed} in {folder}")
    return folder


def fastapi_peer(peer, work, port):
    """The FastAPI service in folder `peer`: its requirements.txt installed, its run.sh started."""
    venv = os.environ.get("PEER_VENV", "/tmp/miniauth-peer-venv")
    if not os.path.exists(os.path.join(venv, "bin", "uvicorn")):
        log(f"installing the FastAPI peer into {venv}")
        run([sys.executable, "-m", "venv", venv])
        run([os.path.join(venv, "bin", "pip"), "install", "-q", "-r", os.path.join(peer, "requirements.txt")])
    database = os.path.join(work, "peer.db")
    env = {**os.environ, "PORT": str(port), "VENV": venv, "PEER_WORK": work,
           "DATABASE_URL": f"sqlite:///{database}"}

    def count_users(prefix):
        with sqlite3.connect(database) as db:
            return db.execute("SELECT COUNT(*) FROM users WHERE username LIKE ?", (prefix + "%",)).fetchone()[0]
    return Target("FastAPI", port, [os.path.join(peer, "run.sh")], env, work, count_users, "/docs")


# --- report ---------------------------------------------------------------------------------

def fmt_wrk(r):
    p99 = f"{r['p99']:.2f} ms" if r.get("p99") is not None else "?"
    p50 = f"{r['p50']:.2f} ms" if r.get("p50") is not None else "?"
    extra = f", {r['non2xx']} non-2xx" if r.get("non2xx") else ""
    return f"{r['rps']:,.0f} req/s, p50 {p50}, p99 {p99}{extra}"


def report(ours, peer, bcrypt_ms, cost, backend):
    bound = CORES / (bcrypt_ms / 1000)
    rows = []
    ceiling = ours["ceiling"]["rps"]
    p64 = ours["profile64"]
    peer_best = max(peer["profile32"]["rps"], peer["profile64"]["rps"]) if peer else None

    def verdict(ok):
        return "PASS" if ok else "MISS"

    rows.append(("GET /healthz (ceiling), 64 conn", fmt_wrk(ours["ceiling"]), "", ""))
    profile_ratio = p64["rps"] / ceiling
    target = f"≥ 50 % of ceiling: {profile_ratio:.0%}; p99 ≤ 10 ms"
    ok = profile_ratio >= 0.5 and p64["p99"] is not None and p64["p99"] <= 10
    if peer:
        times = p64["rps"] / peer_best
        target += f"; ≥ 40× FastAPI: {times:.0f}×"
        ok = ok and times >= 40
    rows.append(("GET /auth/profile bearer, 64 conn", fmt_wrk(p64), target, verdict(ok)))
    rows.append(("GET /auth/profile bearer, 32 conn", fmt_wrk(ours["profile32"]), "", ""))
    if "forward_auth" in ours:
        forward = ours["forward_auth"]
        forward_ratio = forward["rps"] / ceiling
        ok = forward_ratio >= 0.5 and forward["p99"] is not None and forward["p99"] <= 10 and not forward.get("non2xx")
        rows.append(("GET /authz/auth-request cookie, 64 conn", fmt_wrk(forward),
                     f"≥ 50 % of ceiling: {forward_ratio:.0%}; p99 ≤ 10 ms", verdict(ok)))
    login = ours["login"]
    share = login["rps"] / bound
    rows.append((f"POST /auth/login, 8 conn, cost {cost}", f"{login['rps']:.2f} req/s ({login['statuses']})",
                 f"≥ 90 % of bcrypt bound {bound:.2f}/s: {share:.0%}", verdict(share >= 0.9)))
    storm = ours["probe_storm"]
    rows.append(("profile probe 20/s during login storm",
                 f"p50 {storm['p50']:.2f} ms, p99 {storm['p99']:.2f} ms, max {storm['max']:.2f} ms",
                 "p99 ≤ 10 ms", verdict(storm["p99"] <= 10 and not storm["failures"])))
    alone = ours["probe_alone"]
    rows.append(("profile probe 20/s alone", f"p50 {alone['p50']:.2f} ms, p99 {alone['p99']:.2f} ms", "", ""))
    reg = ours["register200"]
    created = reg["tally"].get(201, 0)
    rows.append(("200 concurrent registrations",
                 f"{created} × 201, {reg['rows']} rows, {reg['seconds']:.1f} s, {reg['tally']}",
                 "200 × 201, none lost", verdict(created == 200 and reg["rows"] == 200)))
    if "refresh" in ours:
        rows.append(("POST /auth/refresh, 16 conn", f"{fmt_wrk(ours['refresh'])} ({ours['refresh']['statuses']})", "", ""))
    hwm, now = ours["rss_kb"]
    rows.append(("peak RSS after all phases", f"{hwm / 1024:.1f} MB (now {now / 1024:.1f} MB)", "≤ 48 MB",
                 verdict(hwm <= 48 * 1024)))

    print(f"\nMiniAuth benchmark — {backend}, {CORES} cores, bcrypt cost {cost} "
          f"(one verification {bcrypt_ms:.0f} ms → bound {bound:.2f} logins/s), wrk -t1 on the same cores\n")
    print("| figure | MiniAuth | target | |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if peer:
        preg = peer["register200"]
        print("\nFastAPI original, same phases, same run:\n")
        print("| figure | FastAPI |")
        print("|---|---|")
        print(f"| GET /auth/profile, 32 conn | {fmt_wrk(peer['profile32'])} |")
        print(f"| GET /auth/profile, 64 conn | {fmt_wrk(peer['profile64'])} |")
        print(f"| POST /auth/login, 8 conn | {peer['login']['rps']:.2f} req/s ({peer['login']['statuses']}) |")
        ps = peer["probe_storm"]
        print(f"| profile probe during login storm | p50 {ps['p50']:.2f} ms, p99 {ps['p99']:.2f} ms |")
        print(f"| 200 concurrent registrations | {preg['tally']}, {preg['rows']} rows, {preg['seconds']:.1f} s |")
        print(f"| peak RSS | {peer['rss_kb'][0] / 1024:.1f} MB |")
        print(f"\nMiniAuth / FastAPI, profile: {p64['rps'] / peer_best:.0f}× "
              f"(against FastAPI's better of 32 and 64 connections)")


def report_storm(storm):
    probe_, blocked = storm["probe"], storm["blocked"]
    print("\nWrong-password storm (1,000 names × 50 addresses, 8 conn, bcrypt cost 4, default limits):\n")
    print("| figure | MiniAuth | target | |")
    print("|---|---|---|---|")
    print(f"| storm | {fmt_wrk(storm['storm'])} ({storm['storm']['statuses']}) | | |")
    ok = probe_["p99"] <= 10 and not probe_["failures"]
    print(f"| profile probe 20/s during the storm | p50 {probe_['p50']:.2f} ms, p99 {probe_['p99']:.2f} ms, "
          f"max {probe_['max']:.2f} ms | p99 ≤ 10 ms | {'PASS' if ok else 'MISS'} |")
    ok = blocked["p50"] is not None and blocked["p50"] < 1 and "429" in blocked["statuses"]
    print(f"| a blocked answer (429), 1 conn | {fmt_wrk(blocked)} ({blocked['statuses']}) | < 1 ms | "
          f"{'PASS' if ok else 'MISS'} |")


def report_scale(fresh, scaled, seeding, size, users):
    print(f"\nAt scale: 1,000,000 users, 1,000,000 sessions, 3,000,000 spent refresh tokens "
          f"(seeded in {seeding:.0f} s); the same phases, the same run:\n")
    print("| figure | fresh | at scale | ratio | target | |")
    print("|---|---|---|---|---|---|")
    for name, key in (("POST /auth/login", "login"), ("GET /auth/profile, 64 conn", "profile64"),
                      ("POST /auth/refresh, 16 conn", "refresh")):
        ratio = scaled[key]["rps"] / fresh[key]["rps"]
        print(f"| {name} | {fresh[key]['rps']:,.1f} req/s | {scaled[key]['rps']:,.1f} req/s | {ratio:.0%} | "
              f"≥ 80 % | {'PASS' if ratio >= 0.8 else 'MISS'} |")
    hwm = scaled["rss_kb"][0]
    print(f"| peak RSS after all phases | {fresh['rss_kb'][0] / 1024:.1f} MB | {hwm / 1024:.1f} MB | | "
          f"≤ 48 MB | {'PASS' if hwm <= 48 * 1024 else 'MISS'} |")
    print(f"\nDatabase size at scale: {size / 1e6:,.0f} MB for {users:,} users: "
          f"{size / users:,.0f} bytes per user (with its session and 3 spent refresh tokens)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", metavar="PATH",
                        help="also run the FastAPI service in folder PATH (with its requirements.txt and run.sh)")
    parser.add_argument("--postgres", metavar="URL", help="run MiniAuth on PostgreSQL (URL of an existing database)")
    parser.add_argument("--seconds", type=int, default=15, help="length of each wrk phase")
    parser.add_argument("--cost", type=int, default=12, help="bcrypt cost")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--scale", action="store_true",
                        help="then seed 1M users, 1M sessions, 3M spent refresh tokens and measure again")
    parser.add_argument("--json", metavar="FILE", help="also write the raw figures here")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for MiniAuth, e.g. ROCKET_WORKERS=4 (repeatable)")
    parser.add_argument("--flood", action="store_true",
                        help="only the flood phase: half-sent requests held, directly and through nginx")
    parser.add_argument("--flood-size", type=int, default=5000, help="connections of the flood phase")
    parser.add_argument("--flood-seconds", type=int, default=30, help="how long the flood phase holds them")
    args = parser.parse_args()
    if args.flood:
        return flood_main(args)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    peer_dir = peer_folder(args.peer) if args.peer else None

    log("building the release binary")
    subprocess.run(["cargo", "build", "--release", "--bin", "miniauth", "--example", "bcrypt_cost",
                    "--example", "passkey_client"], cwd=REPO, check=True)
    bcrypt_ms = float(run([os.path.join(REPO, "target", "release", "examples", "bcrypt_cost"), str(args.cost)]))
    log(f"one bcrypt verification at cost {args.cost}: {bcrypt_ms:.1f} ms")

    results = {}
    with tempfile.TemporaryDirectory(prefix="miniauth-bench-") as work:
        extra_env = dict(pair.split("=", 1) for pair in args.env)
        ours = miniauth(os.path.join(work, "miniauth"), args.port, args.cost, args.postgres, extra_env)
        os.makedirs(ours.cwd)
        try:
            ours.start()
            results["miniauth"] = measure(ours, args.seconds, ceiling=True)
            if args.scale:
                ours.stop()
                log("seeding 1,000,000 users, 1,000,000 sessions, 3,000,000 spent refresh tokens")
                seeding = seed_scale(ours, ours.database_url, work)
                log(f"seeded in {seeding:.0f} s")
                ours.start()
                results["scaled"] = measure(ours, args.seconds, ceiling=True)
                results["scale"] = {"seeding": seeding, "bytes": database_bytes(ours, ours.database_url),
                                    "users": ours.count_users("")}
        finally:
            ours.stop()
        storm = miniauth(os.path.join(work, "storm"), args.port + 2, 4, args.postgres, extra_env)
        os.makedirs(storm.cwd)
        try:
            storm.start()
            results["storm"] = storm_phase(storm, args.seconds)
        finally:
            storm.stop()
        second = miniauth(os.path.join(work, "second"), args.port + 3, 4, args.postgres, extra_env)
        os.makedirs(second.cwd)
        try:
            second.start()
            results["second_step"] = second_step_phase(second)
        finally:
            second.stop()
        # Browsers and authenticators take passkeys only for a named host: this one is localhost.
        passkeys_env = {**extra_env, "ROCKET_PUBLIC_URL": f"http://localhost:{args.port + 4}"}
        passkeys = miniauth(os.path.join(work, "passkeys"), args.port + 4, 4, args.postgres, passkeys_env)
        os.makedirs(passkeys.cwd)
        try:
            passkeys.start()
            results["passkeys"] = passkey_phase(passkeys)
        finally:
            passkeys.stop()
        if peer_dir:
            peer = fastapi_peer(peer_dir, os.path.join(work, "peer"), args.port + 1)
            os.makedirs(peer.cwd)
            try:
                peer.start()
                results["peer"] = measure(peer, args.seconds, ceiling=False)
            finally:
                peer.stop()
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"bcrypt_ms": bcrypt_ms, "cores": CORES, **results}, out, indent=2, default=str)
    report(results["miniauth"], results.get("peer"), bcrypt_ms, args.cost,
           "PostgreSQL" if args.postgres else "SQLite")
    report_storm(results["storm"])
    second = results["second_step"]
    print("\nThe second step of a two-step sign-in (recovery codes, Python clients, bcrypt cost 4 before it):\n")
    print("| figure | MiniAuth |\n|---|---|")
    print(f"| POST /auth/login/second-factor, 8 conn | {fmt_wrk(second)} ({second['statuses']}) |")
    passkeys, login = results["passkeys"], results["miniauth"]["login"]
    print("\nSigning in with a passkey (start + finish, Rust clients) beside the password sign-in:\n")
    print("| figure | MiniAuth |\n|---|---|")
    print(f"| passkey sign-in, POST /auth/passkeys/login/start + /finish, 8 conn | "
          f"{fmt_wrk(passkeys)} ({passkeys['statuses']}) |")
    print(f"| password sign-in, POST /auth/login at bcrypt cost {args.cost}, 8 conn | {fmt_wrk(login)} |")
    oidc, profile = results["miniauth"]["oidc"], results["miniauth"]["profile32"]
    print("\nSign in with MiniAuth (OpenID Connect), beside the profile route:\n")
    print("| figure | MiniAuth |\n|---|---|")
    print(f"| POST /oauth/token (authorization_code: an RS256 ID token, a grant and an access token stored), "
          f"16 conn | {fmt_wrk(oidc['token'])} ({oidc['token']['statuses']}; {oidc['token']['codes']:,} codes) |")
    print(f"| GET /oauth/userinfo, 16 conn | {fmt_wrk(oidc['userinfo'])} |")
    print(f"| GET /auth/profile, 32 conn | {fmt_wrk(profile)} |")
    if args.scale:
        scale = results["scale"]
        report_scale(results["miniauth"], results["scaled"], scale["seeding"], scale["bytes"], scale["users"])


def flood_main(args):
    log("building the release binary")
    subprocess.run(["cargo", "build", "--release", "--bin", "miniauth"], cwd=REPO, check=True)
    with tempfile.TemporaryDirectory(prefix="miniauth-bench-") as work:
        results = flood_phase(args, work, dict(pair.split("=", 1) for pair in args.env))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"cores": CORES, "flood": results}, out, indent=2, default=str)
    report_flood(results, args.flood_size, args.flood_seconds)


if __name__ == "__main__":
    main()
