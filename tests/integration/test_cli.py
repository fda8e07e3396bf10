"""`sluice SUB-COMMAND`, the scriptable CLI (tui/cli.h is the contract), against the real
stack: Redis, a test upstream, two sidecar agents and sluice-server with API keys. Every
sub-command runs as the real binary; -o json output is checked field by field, tables for
the ids they must show, and every exit code: 0 success, 1 refused (not found, 412, 422),
2 usage, 3 unreachable, 4 authentication or role."""

import json
import os
import tempfile

import harness
from harness import LOOPBACK, Program, free_port, run_program, wait_until

import agent_fixture
from agent_fixture import wait_binary
from upstream import Upstream

TEST_TIMEOUT_S = 120
RUN = os.urandom(3).hex()
TOKEN = "it-cli-" + os.urandom(6).hex()
SERVICE = "cli-svc-" + RUN


class S:
    redis = None
    up = None
    agents = []
    server = None
    port = None
    keys = {}  # role → key
    tmp = None


def api(method, path, role="admin", body=None):
    """The control plane directly (to set up and to compare with what the CLI shows)."""
    return harness.http(method, f"http://{LOOPBACK}:{S.port}{path}",
                        {"Authorization": f"Bearer {S.keys[role]}"}, body)


def setup_module():
    for name in ("sluice-agent", "sluice-server", "sluice"):
        wait_binary(name)
    S.redis = harness.RedisServer().start()
    S.up = Upstream().start()
    S.agents = [agent_fixture.Agent(S.up.port, "--trace-sample", "1", redis=S.redis, token=TOKEN,
                                    service=SERVICE, workers=1, agent_id=f"cli-side-{RUN}-{n}",
                                    label=f"cli-sidecar-{n}").start() for n in (1, 2)]
    for role in ("viewer", "operator", "admin"):  # an API key per role, printed once
        cp = run_program("sluice-server",
                         ["keys", "create", "--role", role, "--redis", S.redis.url])
        assert cp.returncode == 0, cp.stderr
        S.keys[role] = cp.stdout.decode().split()[0]
    S.port = free_port()
    S.server = Program("sluice-server", ["--listen", f"{LOOPBACK}:{S.port}", "--redis", S.redis.url,
                                         "--agent-token", TOKEN, "--poll-ms", "300",
                                         "--agent-timeout-ms", "250"],
                       port=S.port, label="cli-server")
    agent_fixture.retry_exec(S.server.start, "start sluice-server", name="sluice-server")
    S.server.wait_http_ready("/healthz", timeout_s=10)
    S.tmp = tempfile.mkdtemp(prefix="cli-files-", dir=harness.tmp_root())
    wait_until(lambda: len(replicas()) == 2, 10, "both agents in the fleet view")


def teardown_module():
    # the programs and Redis are the harness's (run.py stops them after the module); the
    # upstream runs in this process
    if S.up:
        S.up.stop()


def replicas():
    for svc in api("GET", "/v1/fleet", "viewer").json()["services"]:
        if svc["name"] == SERVICE:
            return [r for r in svc["replicas"] if r["up"]]
    return []


# --- running the CLI --------------------------------------------------------------------------


def sluice(*args, role="admin", server=True, env=None, stdin=None, timeout_s=30):
    """The CLI with --server and --token (of `role`; None: no token). A CompletedProcess with
    text stdout/stderr."""
    a = [str(x) for x in args]
    if server:
        a += ["--server", f"http://{LOOPBACK}:{S.port}"]
    if role:
        a += ["--token", S.keys[role]]
    cp = run_program("sluice", a, env=env, timeout_s=timeout_s,
                     input_bytes=stdin.encode() if isinstance(stdin, str) else stdin)
    cp.stdout, cp.stderr = cp.stdout.decode(), cp.stderr.decode()
    return cp


def ok_json(*args, **kw):
    """-o json: exit 0 and exactly one line of JSON on stdout."""
    cp = sluice(*args, "-o", "json", **kw)
    assert cp.returncode == 0, (args, cp.returncode, cp.stderr)
    assert cp.stdout.endswith("\n") and cp.stdout.count("\n") == 1, cp.stdout[:500]
    return json.loads(cp.stdout)


def ok_table(*args, **kw):
    cp = sluice(*args, **kw)
    assert cp.returncode == 0, (args, cp.returncode, cp.stderr)
    return cp.stdout


def fails(code, *args, **kw):
    """Exit `code`, a message on stderr in one or two lines (three for a usage text aside)."""
    cp = sluice(*args, **kw)
    assert cp.returncode == code, (args, cp.returncode, cp.stdout[:300], cp.stderr)
    assert cp.stderr.strip(), args
    return cp


def write_file(name, doc):
    path = os.path.join(S.tmp, name)
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def policy(limit=100):
    return {"scope": "sidecar", "match": {"path_prefix": "/nothing-here"}, "key": "ip",
            "algorithm": "token_bucket", "limit": limit, "window_ms": 60000, "burst": 10,
            "store": "local"}


# --- exit codes 2, 3, 4 -----------------------------------------------------------------------


def test_help_lists_commands_and_exit_codes():
    cp = sluice("help", server=False, role=None)
    assert cp.returncode == 0, cp.stderr
    for word in ("status", "limits set NAME", "drain REPLICA", "faults set", "slos", "traces",
                 "queues", "drills start NAME", "Exit codes", "SLUICE_SERVER", "SLUICE_TOKEN"):
        assert word in cp.stdout, word
    for code in range(5):
        assert f"\n  {code}  " in cp.stdout, code
    cp = sluice("limits", "set", "--help", server=False, role=None)
    assert cp.returncode == 0 and "--if-match N" in cp.stdout and "--file FILE" in cp.stdout
    cp = sluice("drain", "-h", server=False, role=None)
    assert cp.returncode == 0 and "--wait" in cp.stdout


def test_usage_errors_exit_2_without_calling_the_server():
    closed = f"http://{LOOPBACK}:{free_port()}"  # 3 if anything were sent
    bad_json = write_file("bad.json", '{"scope": "sidecar",\n "limit": }')
    cases = [
        (["limits"], "usage: sluice limits VERB"),
        (["limits", "frob", "x"], "no 'limits frob'"),
        (["limits", "get"], "expected NAME"),
        (["limits", "get", "a", "b"], "expected NAME only"),
        (["status", "--bogus"], "--bogus"),
        (["status", "-x"], "-x"),
        (["status", "-o", "yaml"], "expected table or json"),
        (["weight", "r1", "heavy"], "WEIGHT"),
        (["weight", "r1", "101"], "0 to 100"),
        (["drain", "r1", "--timeout-s", "0"], "--timeout-s"),
        (["limits", "set", "x", "--file", os.path.join(S.tmp, "missing.json")], "missing.json"),
        (["limits", "set", "x", "--file", bad_json], "line 2"),
        (["faults", "set", "r1", "--delay-ms", "10"], "--ttl-s"),
        (["faults", "set", "r1", "--ttl-s", "10"], "--delay-ms"),
        (["traces", "--status", "7xx"], "--status"),
        (["help", "nope"], "nope"),
    ]
    for args, says in cases:
        cp = fails(2, *args, "--server", closed, server=False, role=None)
        assert says in cp.stderr, (args, cp.stderr)
    cp = fails(2, "limits", "set", "x", "--server", closed, server=False, role=None, stdin="")
    assert "empty" in cp.stderr and "--file" in cp.stderr, cp.stderr
    cp = fails(2, "limits", "set", "x", "--server", closed, server=False, role=None, stdin="[1]")
    assert "one JSON object" in cp.stderr, cp.stderr


def test_server_down_exits_3():
    closed = f"http://{LOOPBACK}:{free_port()}"
    cp = fails(3, "status", "--server", closed, server=False)
    assert "did not answer" in cp.stderr and "SLUICE_SERVER" in cp.stderr, cp.stderr
    assert len(cp.stderr.strip().splitlines()) <= 2
    cp = fails(3, "limits", "list", server=False, env={"SLUICE_SERVER": closed})
    assert closed in cp.stderr
    cp = fails(3, "status", "--server", "ftp://example.invalid", server=False)
    assert "http://HOST:PORT" in cp.stderr, cp.stderr
    assert sluice("status", "-o", "json", "--server", closed, server=False).stdout == ""


def test_auth_exits_4_and_says_which_key():
    cp = fails(4, "status", role=None)
    assert "--token" in cp.stderr and "SLUICE_TOKEN" in cp.stderr and "keys create" in cp.stderr
    cp = fails(4, "status", "--token", "sk_" + "x" * 40, role=None)
    assert "not accepted" in cp.stderr, cp.stderr
    cp = fails(4, "drain", S.agents[0].id, role="viewer")
    assert "operator" in cp.stderr, cp.stderr
    fails(4, "limits", "set", "x", role="viewer", stdin=json.dumps(policy()))
    fails(4, "faults", "clear", S.agents[0].id, role="viewer")
    # the environment stands in for the flags
    env = {"SLUICE_SERVER": f"http://{LOOPBACK}:{S.port}", "SLUICE_TOKEN": S.keys["viewer"]}
    assert ok_json("status", server=False, role=None, env=env)["services"]
    cp = sluice("status", "-o", "json", role=None)
    assert cp.returncode == 4 and json.loads(cp.stdout)["status"] == 401  # the problem document


# --- status -----------------------------------------------------------------------------------


def test_status_json_and_table():
    for a in S.agents:
        for _ in range(20):
            assert a.get("/echo/cli").status == 200

    def busy():
        doc = ok_json("status", role="viewer")
        svc = next((s for s in doc["services"] if s["name"] == SERVICE), None)
        return svc and all(r["rps"] is not None for r in svc["replicas"]) and doc

    doc = wait_until(busy, 10, "rates in sluice status")
    assert doc["agents"] >= 2 and doc["agents_up"] >= 2 and isinstance(doc["ts"], int)
    svc = next(s for s in doc["services"] if s["name"] == SERVICE)
    assert sorted(r["id"] for r in svc["replicas"]) == sorted(a.id for a in S.agents)
    for r in svc["replicas"]:
        assert r["state"] == "serving" and r["up"] is True and r["role"] == "sidecar", r
        assert isinstance(r["weight"], int) and r["rps"] >= 0
        assert r["error_ratio"] is None or 0 <= r["error_ratio"] <= 1, r  # null: no requests
        assert isinstance(r["in_flight"], int) and isinstance(r["policy_version"], int)
        for k in ("p50_ms", "p95_ms", "p99_ms", "cache_hit_ratio", "limited_per_s", "routes"):
            assert k in r, k
    assert svc["totals"]["replicas"] == 2 and svc["totals"]["replicas_up"] == 2
    out = ok_table("status", role="viewer")
    lines = out.splitlines()
    head = lines[0]
    for col in ("SERVICE", "REPLICA", "STATE", "UP", "WEIGHT", "RPS", "ERR%", "P50_MS", "P99_MS",
                "IN_FLIGHT", "HIT%", "429/S", "POLICY"):
        assert col in head.split(), (col, head)
    state_at = head.index("STATE")
    for a in S.agents:
        row = next(ln for ln in lines if f" {a.id} " in ln)
        assert row.startswith(SERVICE) and row[state_at:].startswith("serving"), (row, head)
    total = next(ln for ln in lines if ln.startswith(SERVICE) and "(total)" in ln)
    assert "2/2" in total.split(), total
    assert not any(ln != ln.rstrip() for ln in lines), "no trailing blanks"


# --- limits -----------------------------------------------------------------------------------


def test_limits_set_get_list_conflict_history_rollback_delete():
    name = f"cli-lim-{RUN}"
    doc = ok_json("limits", "set", name, "--file", write_file("p1.json", policy(100)),
                  role="operator")
    assert doc["name"] == name and doc["version"] == 1 and doc["policy"]["limit"] == 100
    assert doc["policy"]["algorithm"] == "token_bucket" and doc["set_version"] >= 1
    assert set(doc["convergence"]) >= {"version", "agents", "applied", "converged", "pending"}
    got = ok_json("limits", "get", name, role="viewer")
    assert got["name"] == name and got["version"] == 1
    assert got["policy"] == dict(policy(100), name=name), got
    lst = ok_json("limits", "list", role="viewer")
    mine = [p for p in lst["policies"] if p["name"] == name]
    assert len(mine) == 1 and mine[0]["version"] == 1 and lst["set_version"] >= doc["set_version"]
    table = ok_table("limits", "list", role="viewer")
    row = next(ln for ln in table.splitlines() if ln.startswith(name))
    assert "token_bucket" in row and "100" in row.split(), row
    wait_until(lambda: ok_json("limits", "get", name, role="viewer")["convergence"]["converged"],
               10, "both agents on the new set version")
    assert "2 of 2 agents run it" in ok_table("limits", "get", name, role="viewer")
    # stdin, with If-Match: version 2; the same If-Match again is 412 → exit 1
    doc = ok_json("limits", "set", name, "--if-match", "1", stdin=json.dumps(policy(200)),
                  role="operator")
    assert doc["version"] == 2 and doc["policy"]["limit"] == 200
    cp = fails(1, "limits", "set", name, "--if-match", "1", "-o", "json",
               stdin=json.dumps(policy(300)), role="operator")
    assert json.loads(cp.stdout)["status"] == 412
    assert "version 2" in cp.stderr and f"sluice limits get {name}" in cp.stderr, cp.stderr
    assert len(cp.stderr.strip().splitlines()) == 2, cp.stderr
    # 422: each field error named
    cp = fails(1, "limits", "set", name, stdin=json.dumps(dict(policy(), algorithm="magic")),
               role="operator")
    assert "algorithm:" in cp.stderr, cp.stderr
    hist = ok_json("limits", "history", name, role="viewer")
    assert [h["version"] for h in hist["history"]] == [2, 1], hist
    assert "(total)" not in ok_table("limits", "history", name, role="viewer")
    doc = ok_json("limits", "rollback", name, "--version", "1", role="operator")
    assert doc["version"] == 3 and doc["policy"]["limit"] == 100, doc
    assert json.loads(S.redis.cmd("HGET", "sluice:policies", name))["limit"] == 100
    fails(1, "limits", "rollback", name, "--version", "99", role="operator")
    # a `limits get` document is accepted by `limits set` as it is
    fetched = sluice("limits", "get", name, "-o", "json", role="viewer").stdout
    doc = ok_json("limits", "set", name, "--if-match", "3", stdin=fetched, role="operator")
    assert doc["version"] == 4 and doc["policy"]["limit"] == 100
    out = ok_table("limits", "delete", name, "--if-match", "4", role="operator")
    assert f"limit {name} deleted" in out, out
    assert S.redis.cmd("HGET", "sluice:policies", name) is None
    cp = fails(1, "limits", "get", name, role="viewer")
    assert "sluice limits list" in cp.stderr, cp.stderr


# --- drain, undrain, weight -------------------------------------------------------------------


def test_drain_wait_reaches_drained_then_undrain_and_weight():
    victim = S.agents[1]
    cp = sluice("drain", victim.id, "--timeout-s", "10", "--wait", "--wait-s", "20", "-o", "json",
                role="operator")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.count("\n") == 1, cp.stdout
    doc = json.loads(cp.stdout)
    assert doc["id"] == victim.id and doc["state"] == "drained" and doc["in_flight"] == 0, doc
    assert "drained" in cp.stderr.splitlines()[-1], cp.stderr  # progress
    assert victim.stats()["state"] == "drained"
    doc = ok_json("undrain", victim.id, role="operator")
    assert doc["replica"] == victim.id and doc["agent"]["state"] == "serving", doc
    wait_until(lambda: victim.stats()["state"] == "serving", 5, "serving again")
    # table mode: progress then the final line
    cp = sluice("drain", victim.id, "--wait", role="operator")
    assert cp.returncode == 0 and cp.stdout.splitlines()[-1] == f"replica {victim.id}: drained", cp
    out = ok_table("undrain", victim.id, role="operator")
    assert out.startswith(f"replica {victim.id}: state serving"), out
    before = victim.stats()["weight"]
    doc = ok_json("weight", victim.id, 40, role="operator")
    assert doc["agent"] == {"weight": 40} and doc["replica"] == victim.id, doc
    assert victim.stats()["weight"] == 40
    assert ok_table("weight", victim.id, before, role="operator").strip() == \
        f"replica {victim.id}: weight {before}"
    wait_until(lambda: victim.stats()["state"] == "serving", 5, "serving")
    cp = fails(1, "drain", f"nope-{RUN}", role="operator")
    assert "sluice status lists the replica ids" in cp.stderr, cp.stderr


# --- faults -----------------------------------------------------------------------------------


def test_faults_set_get_clear():
    a = S.agents[0]
    doc = ok_json("faults", "set", a.id, "--delay-ms", "50", "--ttl-s", "30", "--path-prefix",
                  "/echo/slow-", role="operator")
    f = doc["agent"]["faults"]
    assert len(f) == 1 and f[0]["kind"] == "delay" and f[0]["ms"] == 50 and f[0]["ttl_s"] == 30, f
    assert f[0]["percent"] == 100 and f[0]["path_prefix"] == "/echo/slow-"
    got = ok_json("faults", "get", a.id, role="viewer")
    assert got["faults"][0]["kind"] == "delay" and 0 < got["faults"][0]["expires_in_s"] <= 30, got
    table = ok_table("faults", "get", a.id, role="viewer")
    assert "delay" in table and "50 ms" in table and "/echo/slow-" in table, table
    path = write_file("faults.json", {"faults": [{"kind": "abort", "status": 503, "ttl_s": 20}]})
    doc = ok_json("faults", "set", a.id, "--file", path, role="operator")
    assert [(x["kind"], x["status"]) for x in doc["agent"]["faults"]] == [("abort", 503)], doc
    assert a.get("/echo/faulted").status == 503
    cp = fails(1, "faults", "set", a.id, role="operator",
               stdin=json.dumps({"faults": [{"kind": "delay", "ms": 5, "ttl_s": 0}]}))
    assert "ttl_s:" in cp.stderr, cp.stderr
    out = ok_table("faults", "clear", a.id, role="operator")
    assert out.strip() == f"replica {a.id}: faults cleared", out
    assert ok_json("faults", "get", a.id, role="viewer")["faults"] == []
    assert "no active faults" in ok_table("faults", "get", a.id, role="viewer")
    assert a.get("/echo/after").status == 200
    fails(1, "faults", "get", f"nope-{RUN}", role="viewer")


# --- SLOs, traces, queues, drills -------------------------------------------------------------


def test_slos_list_and_one():
    name = f"cli-avail-{RUN}"
    r = api("PUT", f"/v1/slos/{name}", "operator",
            {"service": SERVICE, "kind": "availability", "objective": 0.995, "window": "1d"})
    assert r.status == 200, r.json()
    for _ in range(10):
        S.agents[0].get("/echo/slo")
    lst = ok_json("slos", role="viewer")
    mine = [s for s in lst["slos"] if s["name"] == name]
    assert len(mine) == 1 and mine[0]["service"] == SERVICE and mine[0]["kind"] == "availability"
    one = wait_until(lambda: (d := ok_json("slos", name, role="viewer"))["total"] > 0 and d, 10,
                     "the SLO fed by the polls")
    assert one["name"] == name and one["objective"] == 0.995 and one["window_s"] == 86400, one
    assert set(one["burn_rates"]) >= {"5m", "1h", "6h"}, one
    assert one["alert"] in ("none", "ticket", "page"), one
    assert name in ok_table("slos", role="viewer")
    out = ok_table("slos", name, role="viewer")
    assert "objective %" in out and "99.5" in out and "burn rates" in out, out
    cp = fails(1, "slos", f"nope-{RUN}", role="viewer")
    assert "sluice slos" in cp.stderr


def test_traces_list_filters_and_one():
    trace = os.urandom(16).hex()
    S.agents[0].get("/echo/traced", {"traceparent": f"00-{trace}-{os.urandom(8).hex()}-01"})
    err_trace = os.urandom(16).hex()
    S.agents[0].get("/status/503", {"traceparent": f"00-{err_trace}-{os.urandom(8).hex()}-01"})
    wait_until(lambda: sluice("traces", trace, role="viewer").returncode == 0, 10, "the trace")
    doc = ok_json("traces", trace, role="viewer")
    assert doc["trace_id"] == trace and doc["span_count"] >= 1 and doc["status"] == 200, doc
    assert doc["spans"][0]["service"] == SERVICE and doc["spans"][0]["http_status"] == 200
    assert trace in ok_table("traces", trace, role="viewer")
    lst = ok_json("traces", "--limit", "500", role="viewer")
    assert any(t["trace_id"] == trace for t in lst["traces"]) and lst["matched"] >= 1, lst
    wait_until(lambda: sluice("traces", err_trace, role="viewer").returncode == 0, 10, "the 503")
    errs = ok_json("traces", "--status", "5xx", "--service", SERVICE, role="viewer")
    assert err_trace in [t["trace_id"] for t in errs["traces"]], errs
    assert trace not in [t["trace_id"] for t in errs["traces"]], errs
    assert all(500 <= t["status"] <= 599 and t["error"] for t in errs["traces"]), errs
    assert ok_json("traces", "--min-ms", "3600000", role="viewer")["traces"] == []
    assert err_trace in ok_table("traces", "--status", "error", role="viewer")
    cp = fails(1, "traces", "0" * 32, role="viewer")
    assert "sluice traces" in cp.stderr


def test_queues_list_and_one():
    name = f"cli-jobs-{RUN}"
    k = f"sluice:q:{{{name}}}"
    S.redis.cmd("XGROUP", "CREATE", f"{k}:normal", "workers", "$", "MKSTREAM")
    for i in range(5):
        S.redis.cmd("XADD", f"{k}:normal", "*", "job", str(i))
    S.redis.cmd("XREADGROUP", "GROUP", "workers", "w1", "COUNT", "2", "STREAMS", f"{k}:normal", ">")
    S.redis.cmd("XADD", f"{k}:dead", "*", "job", "x")
    S.redis.cmd("SADD", "sluice:queues", name)
    wait_until(lambda: sluice("queues", name, role="viewer").returncode == 0, 10, "the queue")
    q = ok_json("queues", name, role="viewer")
    assert q["name"] == name and q["exists"] is True and q["length"] == 5, q
    assert q["active"] == 2 and q["waiting"] == 3 and q["dead"] == 1, q
    assert q["lanes"]["normal"]["consumers"][0]["name"] == "w1"
    assert name in [x["name"] for x in ok_json("queues", role="viewer")["queues"]]
    row = next(ln for ln in ok_table("queues", role="viewer").splitlines() if ln.startswith(name))
    assert row.split()[1:4] == ["5", "3", "2"], row
    assert "normal" in ok_table("queues", name, role="viewer")
    cp = fails(1, "queues", f"nope-{RUN}", role="viewer")
    assert "sluice queues" in cp.stderr


def test_drills_list_start_abort():
    doc = ok_json("drills", "list", role="viewer")
    assert doc["drills"] == [], doc
    assert ok_table("drills", "list", role="viewer").startswith("no drills")
    # this server runs without --drills: an unknown drill is a 404 (exit 1), a run to abort
    # too; abort-all has nothing to stop (test_drills.py runs real drills)
    cp = fails(1, "drills", "start", "latency", role="operator")
    assert "no drill has that name" in cp.stderr, cp.stderr
    fails(1, "drills", "abort", "run-1", role="operator")
    doc = ok_json("drills", "abort-all", role="operator")
    assert doc["aborted"] == 0, doc
