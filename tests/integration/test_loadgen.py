"""Integration tests of sluice-loadgen (loadgen/) against a real sluice-shortener and a real
Redis on loopback.

The checks lean on what the schedule and the seed fix exactly, not on wall-clock timing: a
run of D seconds at R requests/s plans exactly ceil(R*D) requests; `--print-plan N` prints
the first N requests the seed picks, so a real run with that seed must have sent exactly
those kinds to those keys, and the shortener's per-link click counters (app:clicks:{CODE})
must hold exactly the plan's per-link redirect counts. Rate changes (admin endpoint,
SIGUSR1) are checked in the report's schedule and timeline; SIGTERM must still end with the
summary and the report.
"""

import collections
import json
import math
import os
import re
import signal

import harness
from harness import LOOPBACK, Program, free_port, http, run_program, wait_until

from agent_fixture import retry_exec, wait_binary

TEST_TIMEOUT_S = 90
BIN = "sluice-loadgen"
WORKSHOP = str(harness.REPO_ROOT / "samples" / "loadgen" / "workshop.json")
KINDS = ("create", "read", "redirect", "stats", "bulk")


class S:  # module state, filled by setup_module
    redis = None
    app = None
    keys = None  # [app key, abusive key]


# --- helpers --------------------------------------------------------------------------


def start_stack(label):
    """Redis + sluice-shortener + two API keys; returns (redis, shortener, [key, key])."""
    redis = harness.RedisServer(name=f"redis-{label}").start()
    port = free_port()
    app = Program("sluice-shortener", ["--listen", f"{LOOPBACK}:{port}", "--redis", redis.url],
                  port=port, label=f"shortener-{label}")
    retry_exec(app.start, "start sluice-shortener", name="sluice-shortener")
    app.wait_http_ready("/readyz", timeout_s=10)
    keys = []
    for name in ("app", "abusive"):
        cp = run_program("sluice-shortener", ["keys", "create", "--scopes", "links:read,links:write",
                                              "--name", name, "--redis", redis.url])
        assert cp.returncode == 0, cp.stderr
        keys.append(cp.stdout.decode().splitlines()[0])
    return redis, app, keys


def loadgen(*args, timeout_s=60):
    """sluice-loadgen run to completion: (exit code, stdout, stderr)."""
    cp = retry_exec(lambda: run_program(BIN, [str(a) for a in args], timeout_s=timeout_s),
                    f"{BIN} {args[:2]}", name=BIN)
    return cp.returncode, cp.stdout.decode("utf-8", "replace"), cp.stderr.decode("utf-8", "replace")


def plan(n, *args):
    """The first n planned requests: [(seq, kind, key, link or None)]."""
    rc, out, err = loadgen("--print-plan", n, *args)
    assert rc == 0, err
    rows = []
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        seq, _at, kind, key, link = line.split("\t")
        rows.append((int(seq), kind, key, None if link == "-" else int(link)))
    assert len(rows) == n, out[:500]
    return rows


def expected_shares(scenario):
    """P(kind) over all requests: sum over keys of share * the key's mix share of the kind."""
    total_share = sum(k["share"] for k in scenario["keys"])
    p = collections.Counter()
    for k in scenario["keys"]:
        mix = k.get("mix", scenario["mix"])
        w = sum(mix.values())
        for kind, weight in mix.items():
            p[kind] += k["share"] / total_share * weight / w
    return p


def within_binomial(count, n, p, sds=5):
    return abs(count - n * p) <= sds * math.sqrt(n * p * (1 - p)) + 1


def write_scenario(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def tmp_path(name):
    return os.path.join(harness.tmp_root(), f"loadgen-{os.getpid()}-{name}")


# --- module -----------------------------------------------------------------------------


def setup_module():
    for b in (BIN, "sluice-shortener"):
        wait_binary(b)
    S.redis, S.app, S.keys = start_stack("shared")


def teardown_module():
    if S.app:
        S.app.stop()
    if S.redis:
        S.redis.stop()


# --- tests --------------------------------------------------------------------------------


def test_help_version_and_usage_errors():
    rc, out, _ = loadgen("--help")
    assert rc == 0
    for word in ("--rate", "--scenario", "--print-plan", "--admin", "SIGUSR1", "SIGUSR2",
                 "SLUICE_LOADGEN_KEYS", "PUT /v1/rate"):
        assert word in out, word
    rc, out, _ = loadgen("--version")
    assert rc == 0 and re.match(r"^sluice-loadgen \d+\.\d+\.\d+\n$", out), out
    cases = [
        (["--rate", "fast"], "--rate"),
        (["--rate", "-5"], "--rate"),
        (["--target", "ftp://x"], "--target"),
        (["--target", "http://127.0.0.1:1/v1"], "--target"),
        (["--connections", "0"], "--connections"),
        (["--seed", "x"], "--seed"),
        (["--duration", "soon"], "--duration"),
        (["stray"], "unexpected argument"),
        (["--keys", "a,,b"], "--keys"),
    ]
    for args, word in cases:
        rc, _, err = loadgen(*args, "--print-plan", 1)
        assert rc == 2, (args, rc, err)
        assert word in err, (args, err)


def test_scenario_errors_name_every_field():
    bad = write_scenario(tmp_path("bad.json"), {
        "mix": {"create": 1, "teleport": 2, "read": -1},
        "links": -5, "zipf_s": "steep", "rate_multiplier": 3,
        "keys": [{"name": "a", "share": 0}, {"name": "b", "mix": {}, "color": "red"}],
    })
    rc, _, err = loadgen("--scenario", bad, "--print-plan", 1)
    assert rc == 2
    for field in ("mix.teleport: is not a request kind", "mix.read: must be a number",
                  "links: must be between", "zipf_s: must be a number",
                  "rate_multiplier: is not a known field",
                  "keys[0].share: must be a number greater than 0",
                  "keys[1].color: is not a known field",
                  "keys[1].mix: needs at least one weight"):
        assert field in err, (field, err)
    broken = tmp_path("broken.json")
    with open(broken, "w") as f:
        f.write('{"mix": {"create": 1},\n "links": }')
    rc, _, err = loadgen("--scenario", broken, "--print-plan", 1)
    assert rc == 2 and "line 2" in err, err
    rc, _, err = loadgen("--scenario", WORKSHOP, "--keys", "only-one", "--print-plan", 1)
    assert rc == 2 and "has 2 keys (app, abusive), got 1" in err, err
    rc, _, err = loadgen("--scenario", WORKSHOP, "--rate", "1", "--duration", "1")
    assert rc == 2 and "keys[0] (app): no secret" in err, err
    few = write_scenario(tmp_path("few.json"), {"mix": {"stats": 1}, "links": 1})
    rc, _, err = loadgen("--scenario", few, "--keys", "a,b", "--print-plan", 1)
    assert rc == 2 and "links: 1 is fewer than the 2 keys" in err, err


def test_print_plan_is_fixed_by_the_seed():
    a = plan(3000, "--scenario", WORKSHOP, "--seed", 42, "--keys", "x,y")
    assert a == plan(3000, "--scenario", WORKSHOP, "--seed", 42, "--keys", "x,y")
    b = plan(3000, "--scenario", WORKSHOP, "--seed", 43, "--keys", "x,y")
    assert sum(ra != rb for ra, rb in zip(a, b)) > 1000
    scenario = json.load(open(WORKSHOP))
    shares = expected_shares(scenario)
    kinds = collections.Counter(r[1] for r in a)
    for kind in KINDS:
        assert within_binomial(kinds[kind], len(a), shares[kind]), (kind, kinds, shares)
    keys = collections.Counter(r[2] for r in a)
    assert within_binomial(keys["abusive"], len(a), 0.3), keys
    # Zipf popularity: link 0 is the hottest, the head holds most redirects
    redirects = collections.Counter(r[3] for r in a if r[1] == "redirect")
    assert redirects.most_common(1)[0][0] == 0, redirects.most_common(3)
    head = sum(c for link, c in redirects.items() if link < 50)
    assert head > 0.5 * sum(redirects.values()), head
    # stats only on links the key owns (link i belongs to key i mod 2)
    for _, kind, key, link in a:
        if kind == "stats":
            assert link % 2 == (0 if key == "app" else 1)
        if kind in ("create", "bulk"):
            assert link is None


def test_run_sends_the_plan_exactly_and_reports_it():
    """200 req/s for 3 s with a seed, on a stack of its own (clean click counters)."""
    redis, app, keys = start_stack("run")
    report = tmp_path("run.json")
    try:
        rc, out, err = loadgen("--target", app.base_url, "--scenario", WORKSHOP, "--rate", 200,
                               "--duration", 3, "--seed", 7, "--keys", ",".join(keys),
                               "--report", report, "--connections", 16)
        assert rc == 0, err
        clicks = [int(redis.cmd("GET", k)) for k in redis.scan_keys("app:clicks:*")]
    finally:
        app.stop()
        redis.stop()
    r = json.load(open(report))
    t = r["totals"]
    # the schedule: exactly ceil(200 * 3) requests, every one sent and answered
    assert r["schedule"]["planned"] == 600 and t["sent"] == 600, (r["schedule"], t["sent"])
    assert t["done"] == 600 and t["aborted"] == 0 and t["in_flight"] == 0, t
    assert r["stopped_by"] == "duration"
    assert set(t["classes"]) == {"2xx", "3xx", "4xx", "429", "5xx", "transport"}
    assert t["classes"]["2xx"] + t["classes"]["3xx"] == 600, t["classes"]
    assert set(t["status"]) <= {"200", "201", "202", "302"}, t["status"]
    assert r["setup"] == {"links": 500, "created": 500, "retries": 0,
                          "seconds": r["setup"]["seconds"]}, r["setup"]
    # the run sent exactly what the seed's plan says: kinds, keys ...
    p = plan(600, "--scenario", WORKSHOP, "--seed", 7, "--keys", "x,y", "--rate", 200)
    want_kinds = collections.Counter(row[1] for row in p)
    want_keys = collections.Counter(row[2] for row in p)
    for kind in KINDS:
        assert r["kinds"][kind]["sent"] == want_kinds[kind], (kind, r["kinds"][kind], want_kinds)
    assert {k: v["sent"] for k, v in r["keys"].items()} == dict(want_keys), r["keys"]
    assert r["kinds"]["redirect"]["status"] == {"302": want_kinds["redirect"]}
    assert r["kinds"]["create"]["status"] == {"201": want_kinds["create"]}
    assert r["kinds"]["bulk"]["status"] == {"202": want_kinds["bulk"]}
    # ... and links: the shortener counted each link's redirects as the plan picked them
    # (codes are random, so compare the multisets of per-link counts)
    want_clicks = collections.Counter(row[3] for row in p if row[1] == "redirect")
    assert sorted(clicks) == sorted(want_clicks.values()), (sorted(clicks)[-5:],
                                                           sorted(want_clicks.values())[-5:])
    # latency: one record per answer, percentiles ordered, service time <= latency
    lat, svc = r["latency_us"], r["service_time_us"]
    assert lat["count"] == 600 and svc["count"] == 600
    ps = [lat["percentiles"][k] for k in ("50", "75", "90", "99", "99.9", "99.99", "100")]
    assert ps == sorted(ps) and ps[-1] == lat["max"], lat
    assert svc["percentiles"]["50"] <= lat["percentiles"]["50"] * 1.04 + 1, (svc, lat)
    # the timeline adds up to the totals
    assert sum(s["sent"] for s in r["timeline"]) == 600
    assert sum(s["done"] for s in r["timeline"]) == 600
    assert all(s["rate"] == 200 for s in r["timeline"])
    # the config is there, the secrets are not
    assert r["config"]["seed"] == 7 and r["config"]["rate"] == 200
    assert [k["name"] for k in r["config"]["keys"]] == ["app", "abusive"]
    text = open(report).read()
    assert not any(k in text for k in keys), "a secret leaked into the report"
    # the summary on stdout: HDR-style percentiles and the per-kind table
    for line in ("50.000%", "99.990%", "100.000%", "redirect", "abusive", "302 x"):
        assert line in out, (line, out)
    assert "setup: 500 links created" in err, err


def status(port):
    resp = http("GET", f"http://{LOOPBACK}:{port}/v1/status", timeout_s=2)
    assert resp.status == 200, resp
    return resp.json()


def test_admin_and_signals_change_the_rate_and_sigterm_reports():
    admin = free_port()
    report = tmp_path("live.json")
    scenario = write_scenario(tmp_path("live-scenario.json"),
                              {"mix": {"redirect": 9, "read": 1}, "links": 20, "zipf_s": 1.0})
    p = Program(BIN, ["--target", S.app.base_url, "--scenario", scenario, "--rate", 100,
                      "--duration", 0, "--seed", 1, "--keys", S.keys[0], "--admin",
                      f"{LOOPBACK}:{admin}", "--report", report], label="loadgen-live")
    retry_exec(p.start, "start sluice-loadgen", name=BIN)
    try:
        wait_until(lambda: status(admin)["phase"] == "run", 15, "the run to start",
                   ignore=(OSError, AssertionError))
        assert http("GET", f"http://{LOOPBACK}:{admin}/healthz", timeout_s=2).status == 200
        wait_until(lambda: status(admin)["sent"] >= 150, 15, "150 requests at 100/s")
        base = f"http://{LOOPBACK}:{admin}/v1/rate"
        for body in ({"rate": -1}, {"rate": "fast"}, {"speed": 3}, [400]):
            resp = http("PUT", base, body=body, timeout_s=2)
            assert resp.status == 422, (body, resp)
        assert http("PUT", base, body="{", timeout_s=2).status == 400
        resp = http("PUT", base, body={"rate": 400}, timeout_s=2)
        assert resp.status == 200 and resp.json() == {"rate": 400.0, "previous": 100.0}, resp
        assert status(admin)["rate"] == 400
        at_change = status(admin)["sent"]
        wait_until(lambda: status(admin)["sent"] >= at_change + 1000, 15, "1000 at 400/s")
        os.kill(p.pid, signal.SIGUSR1)  # doubles: 800/s
        wait_until(lambda: status(admin)["rate"] == 800, 5, "SIGUSR1 to double the rate")
        at_double = status(admin)["sent"]
        wait_until(lambda: status(admin)["sent"] >= at_double + 2500, 15, "2500 at 800/s")
        os.kill(p.pid, signal.SIGTERM)
        assert p.wait_exit(15) == 0, p.stderr_tail()
    finally:
        p.stop()
    r = json.load(open(report))
    assert r["stopped_by"] == "signal"
    changes = r["schedule"]["rate_changes"]
    assert [(c["rate"], c["source"]) for c in changes] == [(400, "admin"), (800, "SIGUSR1")], changes
    t = r["totals"]
    assert t["sent"] == r["schedule"]["planned"] and t["done"] + t["aborted"] == t["sent"], t
    assert t["classes"]["4xx"] == t["classes"]["5xx"] == t["classes"]["transport"] == 0, t
    # the timeline shows each rate: whole seconds before, between and after the changes
    first_change_s = changes[0]["at_ms"] / 1000
    second_change_s = changes[1]["at_ms"] / 1000
    full = [s for s in r["timeline"] if not s.get("partial")]
    stop_s = full[-1]["t"]  # SIGTERM came in this second or the next: not a whole one
    for rate, lo, hi in ((100, 0, first_change_s), (400, first_change_s, second_change_s),
                         (800, second_change_s, stop_s)):
        seconds = [s for s in full if s["t"] >= lo and s["t"] + 1 <= hi]
        assert seconds, (rate, lo, hi, full)
        for s in seconds:
            assert s["rate"] == rate and abs(s["sent"] - rate) <= 0.2 * rate, (rate, s)
    # requests before the first change were planned at 100/s: exactly changes[0].first of them
    before = sum(s["sent"] for s in full if s["t"] + 1 <= first_change_s)
    assert before <= changes[0]["first"], (before, changes[0])
    assert "100.000%" in open(p.stdout_path).read()


def test_setup_failures_end_the_run_with_status_1():
    rc, _, err = loadgen("--target", S.app.base_url, "--rate", 10, "--duration", 1, "--keys",
                         "sk_not_a_real_key")
    assert rc == 1 and "answered 401" in err and "key 'key1'" in err, err
    dead = free_port()
    rc, _, err = loadgen("--target", f"http://{LOOPBACK}:{dead}", "--rate", 10, "--duration", 1,
                         "--keys", S.keys[0], "--timeout-ms", 500, timeout_s=30)
    assert rc == 1 and "cannot reach" in err, err


def test_fractional_rate_and_no_links():
    """7.5 req/s for 2 s: exactly ceil(15) = 15 creates, no setup."""
    scenario = write_scenario(tmp_path("creates.json"), {"mix": {"create": 1}, "links": 0})
    report = tmp_path("creates-report.json")
    rc, _, err = loadgen("--target", S.app.base_url, "--scenario", scenario, "--rate", 7.5,
                         "--duration", 2, "--keys", S.keys[1], "--report", report, "--quiet")
    assert rc == 0, err
    r = json.load(open(report))
    assert r["totals"]["sent"] == 15 and r["totals"]["status"] == {"201": 15}, r["totals"]
    assert r["setup"]["created"] == 0 and not err.strip(), err
