#!/usr/bin/env python3
"""Two builds of MiniAuth side by side on one route: what a change costs.

    python3 bench/ab.py BEFORE AFTER [--rounds 3] [--seconds 10] [--connections 32] [--path /auth/profile]
    python3 bench/ab.py BEFORE AFTER --login [--cost 4] [--connections 8]

BEFORE and AFTER are release binaries (e.g. the commit before a change, built in a worktree:
`git worktree add ../before HEAD~1 && (cd ../before && cargo build --release)`, and this one's
`target/release/miniauth`). Each serves a fresh SQLite database with the benchmark's settings
(bench.py), one user signs in, and wrk drives the route with that user's token; the two take
turns round by round, so that the machine's drift falls on both alike. Prints each round, the
median of each, and the change in percent. `--login` drives `POST /auth/login` instead (correct
passwords of as many accounts as connections, bench/login.lua), with bcrypt at `--cost`: at the
default 4 a check takes about a millisecond, so what a sign-in writes weighs far more than at
the benchmark's cost.

Needs: wrk, python3 (standard library only).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

PASSWORD = "quiet lantern trombone"


def round_of(binary, args, port):
    with tempfile.TemporaryDirectory(prefix="miniauth-ab-") as work:
        target = bench.miniauth(work, port, args.cost, None, {})
        target.cmd = [binary]
        target.start()
        try:
            status, _ = bench.request(port, "POST", "/auth/register", {"username": "abuser", "password": PASSWORD})
            assert status == 201, f"registration answered {status}"
            status, body = bench.request(port, "POST", "/auth/login", {"username": "abuser", "password": PASSWORD})
            assert status == 200, f"sign-in answered {status}"
            token = json.loads(body)["access_token"]
            if args.login:
                return sign_ins(port, args)
            bench.wrk(f"http://127.0.0.1:{port}{args.path}", args.connections, 3,
                      headers=[f"Authorization: Bearer {token}"])  # warm-up
            return bench.wrk(f"http://127.0.0.1:{port}{args.path}", args.connections, args.seconds,
                             headers=[f"Authorization: Bearer {token}"])
        finally:
            target.stop()


def sign_ins(port, args):
    users = [f"abuser{n}" for n in range(args.connections)]
    for name in users:
        status, _ = bench.request(port, "POST", "/auth/register", {"username": name, "password": PASSWORD})
        assert status == 201, f"registration answered {status}"
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "login.lua")
    env = {"BENCH_USERS": ",".join(users), "BENCH_PASSWORD": PASSWORD}
    url = f"http://127.0.0.1:{port}/auth/login"
    bench.wrk(url, args.connections, 3, script=script, env=env)  # warm-up
    return bench.wrk(url, args.connections, args.seconds, script=script, env=env)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--path", default="/auth/profile")
    parser.add_argument("--port", type=int, default=8150)
    parser.add_argument("--login", action="store_true", help="drive POST /auth/login instead")
    parser.add_argument("--cost", type=int, default=4, help="bcrypt cost of the servers")
    args = parser.parse_args()
    rates = {"before": [], "after": []}
    for n in range(args.rounds):
        for name in ("before", "after"):
            result = round_of(os.path.abspath(getattr(args, name)), args, args.port)
            rates[name].append(result["rps"])
            print(f"round {n + 1} {name:<6} {result['rps']:>10,.0f} req/s  p99 {result['p99']:.2f} ms"
                  f"  non-2xx {result['non2xx']}", flush=True)
    before, after = statistics.median(rates["before"]), statistics.median(rates["after"])
    route = "POST /auth/login" if args.login else f"GET {args.path}"
    print(f"{route}, {args.connections} conn, bcrypt cost {args.cost}: before {before:,.0f} req/s, after {after:,.0f} req/s, "
          f"change {(after - before) / before * 100:+.1f} %")


if __name__ == "__main__":
    main()
