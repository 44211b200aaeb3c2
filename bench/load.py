#!/usr/bin/env python3
"""MedCov under load, as a ratio to the machine's limit (issue #15's measurements).

Starts a bare axum "Hello, World!" server (crates/medcov/examples/hello.rs) and MedCov (release
build, embedded or distributed), seeds a hospital, an insurer, a plan, an active policy, a
patient and the staff, then runs wrk (one thread, 32 connections, 10 s unless told otherwise)
against each endpoint and against the baseline in the same run, and prints each figure as a
ratio to the baseline, with p99, errors, the registration burst's drain and the RSS.

    python3 bench/load.py --mode embedded        # or distributed (PostgreSQL and Redis on
                                                 # 127.0.0.1, as the tests use them)
    python3 bench/load.py --mode distributed --split --rounds 2
                                                 # the gateway and each service in its own
                                                 # process; every row twice, RSS after each
                                                 # round and once it stopped falling

In the distributed mode the registration row is also compared with pgbench's TPC-B rate,
measured in the same run on a scratch database (scale 10, 16 clients) that is dropped after.

Needs wrk (Debian: apt-get install wrk). Nothing here is a test: figures go to
docs/benchmarks.md with the date and the machine.
"""

import argparse
import base64
import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORTS = {"gateway": 3100, "auth": 3101, "hospital": 3102, "insurance": 3103, "billing": 3104}
INTERNAL = 3109
BASELINE = "127.0.0.1:3999"


def call(method, url, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text.decode(errors="replace")


def created(method, url, token, body):
    status, answer = call(method, url, token, body)
    if status not in (200, 201):
        sys.exit(f"seeding failed: {method} {url}: {status} {answer}")
    return answer


def gw(path):
    return f"http://127.0.0.1:{PORTS['gateway']}{path}"


def wait_ready(url, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not become ready")


def drop_redis_keys(prefix):
    """Deletes the keys under `prefix` from the shared Redis (a run's own, never another's)."""
    keys = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "--scan", "--pattern", prefix + "*"],
                          capture_output=True, text=True, check=False).stdout.split()
    for start in range(0, len(keys), 500):
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "UNLINK", *keys[start:start + 500]],
                       stdout=subprocess.DEVNULL, check=False)


def rss_mib(pid, field="VmRSS"):
    """A process's resident memory in MiB: all of it (VmRSS), or one part of it: RssAnon (the
    heap: allocations, buffers, caches), RssFile (the binary and mapped files), RssShmem
    (SQLite's WAL index)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def wrk(url, script=None, threads=1, connections=32, duration=10, timeout=2):
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", f"--timeout={timeout}s", "--latency"]
    if script:
        command += ["-s", script]
    command.append(url)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = int(non2xx.group(1)) if non2xx else 0
    return {
        "rps": rps,
        # Answers that were 2xx, a second (a refusal is fast, and no work done).
        "ok_rps": rps * (total - bad) / total if total else 0.0,
        "p99_ms": p99_ms,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "timeouts": int(timeouts.group(1)) if timeouts else 0,
    }


def lua(directory, name, text):
    path = os.path.join(directory, f"{name}.lua")
    with open(path, "w") as file:
        file.write(text)
    return path


def headers_lua(token, method="GET", body=None):
    text = f'wrk.method = "{method}"\nwrk.headers["Authorization"] = "Bearer {token}"\n'
    text += 'wrk.headers["Content-Type"] = "application/json"\n'
    if body is not None:
        text += f"wrk.body = [[{json.dumps(body)}]]\n"
    return text


PGBENCH_SCALE = 10
PGBENCH_CLIENTS = 16


def pgbench(duration):
    """pgbench's TPC-B transactions/s on the shared PostgreSQL, in a scratch database of its own
    (created, filled, measured and dropped here: never the data of another)."""
    server = "postgresql://postgres@127.0.0.1:5432/"
    database = f"medcov_pgbench_{secrets.token_hex(4)}"
    subprocess.run(["psql", server + "postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
    try:
        subprocess.run(["pgbench", "-i", "-q", "-s", str(PGBENCH_SCALE), server + database], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = subprocess.run(["pgbench", "-c", str(PGBENCH_CLIENTS), "-j", "2", "-T", str(duration), server + database],
                             check=True, capture_output=True, text=True).stdout
        tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
        print(f"  pgbench TPC-B: {tps:.0f} transactions/s", flush=True)
        return tps
    finally:
        subprocess.run(["psql", server + "postgres", "-qc", f"DROP DATABASE IF EXISTS {database}"], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--profile", choices=["release", "debug"], default="release",
                        help="debug only to try the script quickly: its figures mean nothing")
    parser.add_argument("--no-build", action="store_true", help="use the binaries already built")
    parser.add_argument("--only", action="append", default=[], metavar="WORDS",
                        help="run only the rows whose name contains WORDS (repeatable; the baseline always runs)")
    parser.add_argument("--split", action="store_true",
                        help="distributed only: the gateway and each service in its own process (`medcov serve "
                             "--target X`), as deployed, instead of all in one")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every row this many times, printing the RSS after each round and once it "
                             "stopped falling (a leak grows between identical rounds)")
    args = parser.parse_args()

    # wrk and the server each hold one descriptor per connection.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.no_build:
        profile = ["--release"] if args.profile == "release" else []
        subprocess.run(["cargo", "build", *profile, "-p", "medcov", "--bin", "medcov", "--example", "hello"],
                       cwd=ROOT, check=True)
    medcov = os.path.join(target, args.profile, "medcov")
    hello = os.path.join(target, args.profile, "examples", "hello")

    work = tempfile.mkdtemp(prefix="medcov-load-")
    env = dict(os.environ, MEDCOV__DATA_DIR=os.path.join(work, "data"), MEDCOV__LOG__LEVEL="warn",
               MEDCOV__GATEWAY__INTERNAL_PORT=str(INTERNAL))
    for service, port in PORTS.items():
        env[f"MEDCOV__SERVICES__{service.upper()}__PORT"] = str(port)
    # A load test is one client: the per-principal limits would measure the limiter.
    env["MEDCOV__GATEWAY__RATE_LIMITS__API__PER_MINUTE"] = "100000000"
    env["MEDCOV__GATEWAY__RATE_LIMITS__API__BURST"] = "1000000"
    if args.mode == "distributed":
        database = f"medcov_load_{secrets.token_hex(4)}"
        subprocess.run(["psql", "postgresql://postgres@127.0.0.1:5432/postgres", "-qc", f"CREATE DATABASE {database}"],
                       check=True)
        env["MEDCOV__DATABASE__URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
        env["MEDCOV__REDIS__URL"] = "redis://127.0.0.1:6379"
        env["MEDCOV__REDIS__KEY_PREFIX"] = f"load{secrets.token_hex(4)}"
        env["MEDCOV__AUTH__KEY_ENCRYPTION_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()

    if args.split and args.mode != "distributed":
        sys.exit("--split needs --mode distributed: the embedded mode is one process by design")
    baseline = subprocess.Popen([hello, BASELINE], stdout=subprocess.DEVNULL)
    if args.split:
        # Services first, so the gateway finds them registered; each process its own RSS.
        servers = [subprocess.Popen([medcov, "serve", "--target", target], env=env, stdout=subprocess.DEVNULL)
                   for target in ("auth", "hospital", "insurance", "billing")]
        for service in ("auth", "hospital", "insurance", "billing"):
            wait_ready(f"http://127.0.0.1:{PORTS[service]}/health/ready")
        servers.append(subprocess.Popen([medcov, "serve", "--target", "gateway"], env=env, stdout=subprocess.DEVNULL))
    else:
        servers = [subprocess.Popen([medcov, "serve"], env=env, stdout=subprocess.DEVNULL)]
    rss = lambda: sum(rss_mib(server.pid) for server in servers)
    try:
        wait_ready(gw("/health/ready"))
        wait_ready(f"http://{BASELINE}/")
        idle_rss = rss()
        layout = f"{len(servers)} processes" if args.split else "one process"
        print(f"# MedCov {args.mode} ({layout}): RSS idle {idle_rss:.0f} MiB", flush=True)

        credentials = open(os.path.join(work, "data", "initial-admin.txt")).read()
        field = lambda name: re.search(rf"^{name}: (.+)$", credentials, re.M).group(1).strip()
        _, login = call("POST", gw("/api/auth/login"), body={"username": field("username"), "password": field("password")})
        admin = login["access_token"]
        hospital = created("POST", gw("/api/hospital/hospitals"), admin,
                           {"name": "Load", "code": "LOD", "timezone": "Africa/Nairobi", "currency": "KES"})["id"]
        insurer = created("POST", gw("/api/insurance/insurers"), admin, {"code": "LOD", "name": "Load", "currency": "KES"})["id"]
        rules = {
            "currency": "KES",
            "premium": {"kind": "per_member", "adult": 1_200_000, "child": 600_000, "child_until_age": 18},
            "max_members": 3, "deductible_member": 100_000, "deductible_family": 200_000,
            "ceilings": {"member_outpatient": 5_000_000, "policy_outpatient": 8_000_000, "member_inpatient": 20_000_000},
            "categories": {
                "consultation": {"setting": "outpatient", "limit_count": 3, "cost_shares": [
                    {"visit_type": "normal", "network": "in_network", "copay": 50_000}]},
                "laboratory": {"setting": "outpatient", "limit_amount": 1_000_000, "cost_shares": [
                    {"visit_type": "normal", "network": "in_network", "coinsurance_bp": 2_000}]}},
            "network": [hospital], "preauth_auto_approve_up_to": 5_000_000}
        plan = created("POST", gw("/api/insurance/plans"), admin,
                       {"insurer_id": insurer, "code": "LOAD", "name": "Load", "effective_from": "2020-01-01", "rules": rules})["id"]
        password = "correct horse battery staple"
        for username, roles, scope in [
            ("agent", ["agent"], {"kind": "insurer", "insurer": insurer}),
            ("clerk", ["hospital_clerk", "billing_clerk", "clinician"], {"kind": "hospitals", "hospitals": [hospital]}),
        ]:
            created("POST", gw("/api/auth/users"), admin, {"username": username, "password": password, "roles": roles, "scope": scope})
        token = lambda username: call("POST", gw("/api/auth/login"), body={"username": username, "password": password})[1]["access_token"]
        agent, clerk = token("agent"), token("clerk")
        start = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 200 * 86400))
        policy = created("POST", gw("/api/insurance/policies"), agent, {"plan_id": plan, "start_date": start,
                         "holder": {"given_name": "Amina", "family_name": "Load", "date_of_birth": "1980-01-01"}})
        created("POST", gw(f"/api/insurance/policies/{policy['id']}/status"), admin, {"status": "active"})
        number = policy["members"][0]["member_number"]
        patient = created("POST", gw("/api/hospital/patients"), clerk, {
            "hospital_id": hospital, "given_name": "Amina", "family_name": "Load", "date_of_birth": "1980-01-01",
            "sex": "female", "member_numbers": [{"insurer_id": insurer, "member_number": number}]})["id"]
        week_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 7 * 86400))
        question = {"member_number": number, "date": week_ago, "hospital_id": hospital, "services": [
            {"service_code": "CONS", "category": "consultation", "price": 300_000},
            {"service_code": "LAB-FBC", "category": "laboratory", "price": 250_000}]}

        scripts = tempfile.mkdtemp(prefix="medcov-wrk-")
        get = lua(scripts, "get", headers_lua(clerk))
        repeated = lua(scripts, "repeated", headers_lua(clerk, "POST", question))
        varied = lua(scripts, "varied", headers_lua(clerk, "POST") + f"""
local n = 0
request = function()
  n = n + 1
  local body = [[{{"member_number": "{number}", "date": "{week_ago}", "hospital_id": "{hospital}", "services": [
    {{"service_code": "CONS", "category": "consultation", "price": 300000}},
    {{"service_code": "LAB-FBC", "category": "laboratory", "price": ]] .. (100000 + n) .. [[}}]}}]]
  return wrk.format(nil, nil, nil, body)
end
""")
        register = lua(scripts, "register", headers_lua(clerk, "POST") + f"""
local letters = "abcdefghijklmnopqrstuvwxyz"
local n = math.random(0, 1000000000)
local function name(k)
  local s = ""
  for _ = 1, 7 do
    local d = k % 26
    s = s .. letters:sub(d + 1, d + 1)
    k = math.floor(k / 26)
  end
  return s
end
request = function()
  n = n + 1
  local body = [[{{"hospital_id": "{hospital}", "given_name": "Load", "family_name": "]] .. name(n) .. [[",
    "date_of_birth": "1980-01-01", "sex": "female",
    "member_numbers": [{{"insurer_id": "{insurer}", "member_number": "{number}"}}]}}]]
  return wrk.format(nil, "/api/hospital/patients?allow_duplicate=true", nil, body)
end
""")

        d, c = args.duration, args.connections
        rows = []
        base = wrk(f"http://{BASELINE}/", duration=d, connections=c)
        rows.append(("baseline: bare axum", base))
        rounds_rss, rounds_settled = [], []

        def settled_rss():
            """Freed memory goes back to the system over seconds (the allocator's background
            threads return it): the RSS once it stops falling, at most a minute later. Growth
            between rounds is read on these figures, not on the RSS just after a round."""
            settled, since = rss(), time.time()
            while time.time() - since < 60:
                time.sleep(3)
                now = rss()
                if now > settled * 0.98:
                    return min(settled, now)
                settled = now
            return settled

        drain_notes = []
        for round_number in range(1, args.rounds + 1):
            suffix = f" (round {round_number})" if args.rounds > 1 else ""
            runs = [
                ("gateway → hospital, cacheable GET", gw(f"/api/hospital/hospitals/{hospital}"), get),
                ("the same GET on the hospital port", f"http://127.0.0.1:{PORTS['hospital']}/hospitals/{hospital}", get),
                ("patient read through the gateway", gw(f"/api/hospital/patients/{patient}"), get),
                ("eligibility, the same question", gw("/api/insurance/eligibility"), repeated),
                ("eligibility, every question different", gw("/api/insurance/eligibility"), varied),
            ]
            wanted = lambda name: not args.only or any(words in name for words in args.only)
            for name, url, script in runs:
                if wanted(name):
                    rows.append((name + suffix, wrk(url, script, duration=d, connections=c)))
                    print(f"  {name}: done", flush=True)
            drained, compensated = None, None
            registration = "register a patient (with a member number)"
            if wanted(registration):
                metrics_url = f"http://127.0.0.1:{PORTS['hospital']}/metrics"

                def sagas():
                    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
                    value = lambda prefix, state="": sum(
                        float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                        if l.startswith(prefix) and (not state or f'state="{state}"' in l))
                    return {state: value("sagas{", state) for state in ("running", "compensating", "completed", "compensated")} | {
                        "refused": value("sagas_refused_total")}

                # What the sagas do during the burst, a line a second (on stderr: not a result).
                sampling = threading.Event()

                def queues():
                    # Each service's outbox backlog and each group's lag and pending entries.
                    found = []
                    for service in ("hospital", "insurance", "billing"):
                        text = urllib.request.urlopen(f"http://127.0.0.1:{PORTS[service]}/metrics", timeout=5).read().decode()
                        for line in text.splitlines():
                            if line.startswith(("events_outbox_backlog", "events_group_lag", "events_group_pending",
                                                "events_published_total", "db_pool_connections",
                                                "db_write_lock_busy_ratio")):
                                value = float(line.rsplit(" ", 1)[1])
                                if value:
                                    name = line.split("{")[0].removeprefix("events_")
                                    shown = f"{value:.0f}" if value.is_integer() else f"{value:.2f}"
                                    found.append(f"{service}:{name}{{{line.split('{')[1].split('}')[0]}}}={shown}")
                    return " ".join(found)

                def sample():
                    started = time.time()
                    while not sampling.wait(1.0):
                        print(f"    {time.time() - started:4.1f} s sagas {sagas()} {queues()}", file=sys.stderr, flush=True)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                burst = wrk(gw("/api/hospital/patients"), register, duration=d, connections=c)
                burst_end = time.time()
                sampling.set()
                rows.append((registration + suffix, burst))
                # The burst's sagas drain: wait for none running, count the compensated.
                while time.time() - burst_end < 300:
                    now = sagas()
                    if now["running"] + now["compensating"] == 0:
                        drained, compensated = time.time() - burst_end, now["compensated"]
                        break
                    time.sleep(0.2)
            if wanted("10,000 connections"):
                # The machine's own figure first: the bare server under the same 10,000.
                many = wrk(f"http://{BASELINE}/", threads=2, connections=10_000, duration=d)
                rows.append(("baseline, 10,000 connections (2 threads)" + suffix, many))
                many = wrk(gw(f"/api/hospital/hospitals/{hospital}"), get, threads=2, connections=10_000, duration=d)
                rows.append(("10,000 connections, cacheable GET (2 threads)" + suffix, many))
            rounds_rss.append(rss())
            rounds_settled.append(settled_rss())
            drain_notes.append(("not run" if not wanted(registration) else "did not drain in 300 s" if drained is None
                                else f"{drained:.1f} s, {compensated:.0f} compensated") + suffix)
            print(f"  round {round_number}: RSS {rounds_rss[-1]:.0f} MiB, {rounds_settled[-1]:.0f} MiB settled",
                  flush=True)
        settled = rounds_settled[-1]
        tpcb = pgbench(d) if args.mode == "distributed" and wanted(registration) else None
        base_end = wrk(f"http://{BASELINE}/", duration=d, connections=c)
        rows.append(("baseline again", base_end))

        reference = (base["rps"] + base_end["rps"]) / 2
        print(f"\n| what ({args.mode}) | requests/s | 2xx/s | ratio (2xx) | p99 | non-2xx | timeouts |")
        print("|---|---|---|---|---|---|---|")
        for name, row in rows:
            print(f"| {name} | {row['rps']:.0f} | {row['ok_rps']:.0f} | {row['ok_rps'] / reference:.3f} "
                  f"| {row['p99_ms']:.1f} ms | {row['non2xx']} | {row['timeouts']} |")
        print(f"\nRegistration burst: sagas drained {'; '.join(drain_notes)}.")
        after = ", ".join(f"{value:.0f} MiB after round {i} ({kept:.0f} settled)"
                          for i, (value, kept) in enumerate(zip(rounds_rss, rounds_settled), 1))
        parts = ", ".join(f"{name} {sum(rss_mib(server.pid, field) for server in servers):.0f}"
                          for name, field in (("heap", "RssAnon"), ("files", "RssFile"), ("shared", "RssShmem")))
        print(f"RSS: {idle_rss:.0f} MiB idle, {after}, {settled:.0f} MiB once it stopped falling ({parts} MiB).")
        if tpcb is not None:
            registered = next(row for name, row in rows if name.startswith(registration))["ok_rps"]
            print(f"pgbench TPC-B (scale {PGBENCH_SCALE}, {PGBENCH_CLIENTS} clients, {d} s, same run): {tpcb:.0f} transactions/s; "
                  f"registrations answered 201 (first round): {registered:.0f}/s = {registered / tpcb:.2f} of it (goal: 0.5)")
    finally:
        for server in servers:
            server.terminate()
        baseline.terminate()
        for server in servers:
            server.wait(timeout=30)
        # Nothing of the run stays behind: its data folder, and its database and Redis keys
        # (those under the run's own prefix) when distributed.
        shutil.rmtree(work, ignore_errors=True)
        if args.mode == "distributed":
            subprocess.run(["psql", "postgresql://postgres@127.0.0.1:5432/postgres", "-qc",
                            f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], check=False)
            drop_redis_keys(env["MEDCOV__REDIS__KEY_PREFIX"] + ":")


if __name__ == "__main__":
    main()
