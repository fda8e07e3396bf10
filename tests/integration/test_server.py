"""sluice-server, the control plane, against real agents, a real upstream and a real Redis
(docs/server.md is the contract): auth and roles, the fleet view, live limits with
If-Match, history and rollback, drain through the API under load, a killed agent shown
down, the SSE stream, SLOs and traces surviving a restart, queues, audit."""

import http.client as httplib
import json
import os
import signal
import socket
import threading
import time

import harness
from harness import LOOPBACK, Program, free_port, run_program, wait_until

import agent_fixture
from agent_fixture import wait_binary
from upstream import Upstream

TEST_TIMEOUT_S = 120
RUN = os.urandom(3).hex()
TOKEN = "it-cp-" + os.urandom(6).hex()
SERVICE = "cp-svc-" + RUN


class S:
    redis = None
    up = None
    agents = []
    server = None
    keys = {}  # role → key


class Sidecar(agent_fixture.Agent):
    token = TOKEN
    id_prefix = "cp-side"
    run = RUN
    label_prefix = "cp-sidecar"


def mint(role):
    cp = run_program("sluice-server", ["keys", "create", "--role", role, "--name", f"it-{role}",
                                       "--redis", S.redis.url], timeout_s=10)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout.decode().splitlines()[0]


class Server:
    def __init__(self, *extra, port=None):
        self.port = port or free_port()
        self.extra = extra
        self.prog = None

    def start(self):
        args = ["--listen", f"{LOOPBACK}:{self.port}", "--redis", S.redis.url, "--agent-token",
                TOKEN, "--poll-ms", "300", "--agent-timeout-ms", "250", *self.extra]
        self.prog = Program("sluice-server", args, port=self.port, label="cp-server")
        agent_fixture.retry_exec(self.prog.start, "start sluice-server", name="sluice-server")
        self.prog.wait_http_ready("/healthz", timeout_s=10)
        return self

    def stop(self):
        if self.prog:
            self.prog.stop()

    def call(self, method, path, role="admin", body=None, headers=None, key=None):
        h = dict(headers or {})
        k = key if key is not None else S.keys.get(role)
        if k:
            h["Authorization"] = f"Bearer {k}"
        return harness.http(method, f"http://{LOOPBACK}:{self.port}{path}", h, body)


def setup_module():
    wait_binary()
    wait_binary("sluice-server")
    S.redis = harness.RedisServer().start()
    S.up = Upstream().start()
    S.agents = [Sidecar(S.up.port, "--trace-sample", "1", redis=S.redis, service=SERVICE,
                        workers=1).start() for _ in range(2)]
    for role in ("viewer", "operator", "admin"):
        S.keys[role] = mint(role)
    S.server = Server().start()
    wait_until(lambda: fleet_replicas() == 2, 10, "both agents in the fleet view")


def teardown_module():
    # the programs and Redis are the harness's: run.py stops them (by PID) after the module;
    # the upstream runs in this process
    if S.up:
        S.up.stop()


def service_view(role="viewer"):
    doc = S.server.call("GET", "/v1/fleet", role).json()
    for svc in doc["services"]:
        if svc["name"] == SERVICE:
            return svc
    return None


def fleet_replicas(up_only=True):
    svc = service_view()
    return 0 if not svc else len([r for r in svc["replicas"] if r["up"] or not up_only])


# --- auth ----------------------------------------------------------------------------------


def test_no_key_is_401_viewer_cannot_mutate_403():
    r = S.server.call("GET", "/v1/fleet", key="")
    assert r.status == 401 and "bearer" in r.headers.get("www-authenticate", "").lower(), r
    assert r.headers["content-type"].startswith("application/problem+json")
    assert S.server.call("GET", "/v1/fleet", key="sk_" + "x" * 40).status == 401
    assert S.server.call("GET", "/v1/fleet", "viewer").status == 200
    r = S.server.call("PUT", "/v1/limits/nope", "viewer", {"scope": "sidecar"})
    assert r.status == 403 and "operator" in r.json()["detail"], r.json()
    assert S.server.call("POST", f"/v1/replicas/{S.agents[0].id}/drain", "viewer", {}).status == 403
    assert S.server.call("GET", "/healthz", key="").status == 200
    r = S.server.call("GET", "/metrics", key="")
    assert r.status == 200 and b"sluice_server_denied_total" in r.body


def test_refuses_a_public_address_without_keys_and_no_auth_off_loopback():
    empty = harness.RedisServer().start()
    try:
        cp = run_program("sluice-server", ["--listen", f"0.0.0.0:{free_port()}", "--redis",
                                           empty.url], timeout_s=10)
        assert cp.returncode == 2 and b"not loopback" in cp.stderr, cp.stderr
        cp = run_program("sluice-server", ["--listen", f"0.0.0.0:{free_port()}", "--no-auth",
                                           "--redis", empty.url], timeout_s=10)
        assert cp.returncode == 2 and b"--no-auth" in cp.stderr, cp.stderr
    finally:
        empty.stop()


# --- fleet ---------------------------------------------------------------------------------


def test_fleet_shows_every_replica_with_rates_and_percentiles():
    for a in S.agents:
        for _ in range(20):
            assert a.get("/echo/fleet").status == 200

    def busy():
        svc = service_view()
        return svc and svc["totals"]["rps"] > 0 and all(r["rps"] is not None for r in svc["replicas"])

    wait_until(busy, 10, "rates in the fleet view")
    svc = service_view()
    ids = sorted(r["id"] for r in svc["replicas"])
    assert ids == sorted(a.id for a in S.agents), ids
    assert all(r["state"] == "serving" and r["up"] for r in svc["replicas"])
    assert svc["totals"]["replicas"] == 2


def test_any_number_of_poller_threads_sees_the_same_fleet():
    # --poll-threads splits the agents across pollers by slot; one thread, or more threads
    # than agents (a poller with nothing to poll), must give the same fleet, sweep after sweep.
    bad = run_program("sluice-server", ["--poll-threads", "0", "--redis", S.redis.url], timeout_s=10)
    assert bad.returncode != 0 and b"poll-threads" in bad.stderr, bad.stderr
    for n in ("1", "3"):
        other = Server("--poll-threads", n).start()
        try:
            def sweeps():
                text = other.call("GET", "/metrics").body.decode()
                return int(next(ln.split()[1] for ln in text.splitlines()
                                if ln.startswith("sluice_server_sweeps_total ")))

            def complete():
                for a in S.agents:
                    assert a.get("/echo/pollers").status == 200
                doc = other.call("GET", "/v1/fleet", "viewer").json()
                svc = next((s for s in doc["services"] if s["name"] == SERVICE), None)
                return (svc and doc["agents_up"] == len(S.agents) and
                        sorted(r["id"] for r in svc["replicas"] if r["up"] and r["rps"] is not None)
                        == sorted(a.id for a in S.agents))

            wait_until(complete, 10, f"--poll-threads {n}: every replica up with rates")
            first = sweeps()
            wait_until(lambda: sweeps() >= first + 2, 10, f"--poll-threads {n}: sweeps go on")
        finally:
            other.stop()


# --- limits --------------------------------------------------------------------------------


def policy(limit=100):
    return {"scope": "sidecar", "match": {"path_prefix": "/nothing-here"}, "key": "ip",
            "algorithm": "token_bucket", "limit": limit, "window_ms": 60000, "burst": 10,
            "store": "local"}


def test_limit_reaches_every_agent_and_if_match_conflicts_412():
    name = f"cp-lim-{RUN}"
    r = S.server.call("PUT", f"/v1/limits/{name}", "operator", policy())
    assert r.status == 201 and r.json()["version"] == 1, r.json()
    assert r.headers["etag"] == '"1"'
    sv = r.json()["set_version"]
    t0 = time.monotonic()
    wait_until(lambda: S.server.call("GET", f"/v1/limits/{name}", "viewer").json()["convergence"]["converged"]
               and S.server.call("GET", f"/v1/limits/{name}", "viewer").json()["convergence"]["agents"] == 2,
               5, "every agent on the new set version")
    converged_s = time.monotonic() - t0
    for a in S.agents:
        assert a.stats()["policy_version"] >= sv
    print(f"converged in {converged_s:.2f} s")
    # two writers with the same If-Match: exactly one wins
    results = []

    def write(limit):
        results.append(S.server.call("PUT", f"/v1/limits/{name}", "operator", policy(limit),
                                     {"If-Match": '"1"'}).status)

    threads = [threading.Thread(target=write, args=(n,)) for n in (200, 300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 412], results
    bad = S.server.call("PUT", f"/v1/limits/{name}", "operator", dict(policy(), algorithm="magic"))
    assert bad.status == 422 and bad.json()["errors"][0]["field"] == "algorithm", bad.json()
    # history and rollback to version 1
    h = S.server.call("GET", f"/v1/limits/{name}/history", "viewer").json()["history"]
    assert [e["version"] for e in h] == [2, 1], h
    r = S.server.call("POST", f"/v1/limits/{name}/rollback", "operator", {"version": 1})
    assert r.status == 200 and r.json()["version"] == 3 and r.json()["policy"]["limit"] == 100, r.json()
    assert json.loads(S.redis.cmd("HGET", "sluice:policies", name))["limit"] == 100
    r = S.server.call("DELETE", f"/v1/limits/{name}", "operator", headers={"If-Match": '"3"'})
    assert r.status == 200
    assert S.redis.cmd("HGET", "sluice:policies", name) is None
    actions = [rec["action"] for rec in S.server.call("GET", "/v1/audit?limit=20", "viewer").json()["records"]
               if rec["target"] == name]
    assert actions[:4] == ["limits.delete", "limits.rollback", "limits.put", "limits.put"], actions
    rec = next(rec for rec in S.server.call("GET", "/v1/audit", "viewer").json()["records"]
               if rec["target"] == name and rec["action"] == "limits.rollback")
    assert rec["before"]["limit"] in (200, 300) and rec["after"]["limit"] == 100 and rec["who"].startswith("key_")


# --- traffic control -----------------------------------------------------------------------


def test_drain_through_the_api_under_load_loses_nothing():
    victim = S.agents[1]
    failures, done = [], []
    stop = threading.Event()

    def load():
        conn = httplib.HTTPConnection(LOOPBACK, victim.port, timeout=5)
        while not stop.is_set():
            try:
                conn.request("GET", "/echo/drain")
                r = conn.getresponse()
                r.read()
                (done if r.status == 200 else failures).append(r.status)
            except (OSError, httplib.HTTPException) as e:
                failures.append(repr(e))
                conn.close()
                conn = httplib.HTTPConnection(LOOPBACK, victim.port, timeout=5)
        conn.close()

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(done) > 50, 10, "load on the victim")
        r = S.server.call("POST", f"/v1/replicas/{victim.id}/drain", "operator", {"timeout_s": 30})
        assert r.status in (200, 202), r.json()
        wait_until(lambda: victim.stats()["state"] in ("draining", "drained"), 3, "draining")
        n = len(done)
        wait_until(lambda: len(done) > n + 50, 10, "load goes on while draining")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [], failures[:5]
    wait_until(lambda: (S.server.call("GET", f"/v1/replicas/{victim.id}", "viewer").json() or {}).get("state") == "drained",
               10, "the replica drained in the control plane's view")
    rec = S.server.call("GET", "/v1/audit?limit=5", "viewer").json()["records"][0]
    assert rec["action"] == "replica.drain" and rec["target"] == victim.id
    assert S.server.call("POST", f"/v1/replicas/{victim.id}/undrain", "operator").status == 200
    wait_until(lambda: victim.stats()["state"] == "serving", 3, "serving again")
    assert S.server.call("POST", "/v1/replicas/nope/drain", "operator", {}).status == 404


def test_sse_delivers_a_snapshot_per_tick():
    # The fleet JSON is rendered only for somebody: a new viewer still starts with the
    # latest sweep (at least as new as GET /v1/fleet's just before, not newer than now),
    # not an older one and not the next.
    before = S.server.call("GET", "/v1/fleet", "viewer").json()
    connected_ms = time.time() * 1000
    sock = socket.create_connection((LOOPBACK, S.server.port), timeout=5)
    try:
        sock.sendall(f"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {S.keys['viewer']}\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + 10
        while data.count(b"event: snapshot") < 3 and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"200" in head.split(b"\r\n")[0] and b"text/event-stream" in head, head
    events = [e for e in body.split(b"\n\n") if b"event: snapshot" in e]
    assert len(events) >= 3, data[:500]
    docs = []
    for e in events[:3]:
        line = next(ln for ln in e.split(b"\n") if ln.startswith(b"data: ") or b"data: " in ln)
        docs.append(json.loads(line[line.index(b"data: ") + 6:]))
    for doc in docs:
        assert "services" in doc and "ts" in doc and doc["agents_up"] == before["agents_up"], doc
    assert before["ts"] <= docs[0]["ts"] <= connected_ms + 1, (before["ts"], docs[0]["ts"], connected_ms)
    assert docs[0]["ts"] < docs[1]["ts"] < docs[2]["ts"]


def test_killed_agent_is_down_within_3_s():
    extra = Sidecar(S.up.port, redis=S.redis, service=SERVICE, workers=1).start()
    try:
        wait_until(lambda: fleet_replicas() == 3, 10, "the third replica up")
        os.kill(extra.prog.pid, signal.SIGKILL)
        extra.prog.proc.wait(timeout=10)
        t0 = time.monotonic()

        def shown_down():
            svc = service_view()
            rep = [r for r in svc["replicas"] if r["id"] == extra.id]
            return rep and not rep[0]["up"] and rep[0]["state"] == "down"

        wait_until(shown_down, 3, "the killed agent shown down")
        print(f"down after {time.monotonic() - t0:.2f} s")
    finally:
        extra.prog.stop()


# --- SLOs, traces, queues, restart -----------------------------------------------------------


def test_slo_history_and_spans_survive_a_restart():
    slo = {"service": SERVICE, "kind": "availability", "objective": 0.99, "window": "1d"}
    r = S.server.call("PUT", f"/v1/slos/avail-{RUN}", "operator", slo)
    assert r.status == 200, r.json()
    bad = S.server.call("PUT", f"/v1/slos/bad-{RUN}", "operator", dict(slo, objective=2))
    assert bad.status == 422 and bad.json()["errors"][0]["field"] == "objective", bad.json()
    for _ in range(30):
        S.agents[0].get("/echo/slo")
    S.agents[0].get("/status/503")

    def counted():
        o = S.server.call("GET", f"/v1/slos/avail-{RUN}", "viewer").json()
        return o["total"] >= 31 and o

    o = wait_until(counted, 10, "the SLO fed by the fleet polls")
    assert o["good"] < o["total"] and o["burn_rates"]["5m"] > 0 and o["alert"] in ("none", "ticket", "page")
    before = o["total"]
    # a trace: the sidecar samples every request (--trace-sample 1)
    trace = os.urandom(16).hex()
    S.agents[0].get("/echo/traced", {"traceparent": f"00-{trace}-{os.urandom(8).hex()}-01"})
    wait_until(lambda: S.server.call("GET", f"/v1/traces/{trace}", "viewer").status == 200, 10,
               "the trace in the control plane")
    t = S.server.call("GET", f"/v1/traces/{trace}", "viewer").json()
    assert t["trace_id"] == trace
    # restart: the history is saved on SIGTERM and loaded at start; spans shipped while the
    # server was down are read then (the consumer group remembers where it stopped)
    port = S.server.port
    S.server.stop()
    trace2 = os.urandom(16).hex()
    S.agents[0].get("/echo/while-down", {"traceparent": f"00-{trace2}-{os.urandom(8).hex()}-01"})
    wait_until(lambda: any(trace2 in json.dumps(f) for _, f in S.redis.cmd("XRANGE", "sluice:spans", "-", "+")),
               10, "the span shipped while the server was down")
    S.server = Server(port=port).start()
    o = S.server.call("GET", f"/v1/slos/avail-{RUN}", "viewer").json()
    assert o["total"] >= before, (o["total"], before)
    wait_until(lambda: S.server.call("GET", f"/v1/traces/{trace2}", "viewer").status == 200, 10,
               "the span read after the restart")
    lst = S.server.call("GET", "/v1/traces?limit=500", "viewer").json()
    assert any(x["trace_id"] == trace2 for x in lst["traces"]), lst
    wait_until(lambda: fleet_replicas() == 2, 10, "the fleet view back")


def test_queues_are_inspected():
    name = f"jobs-{RUN}"
    k = f"sluice:q:{{{name}}}"
    S.redis.cmd("XGROUP", "CREATE", f"{k}:normal", "workers", "$", "MKSTREAM")
    for i in range(5):
        S.redis.cmd("XADD", f"{k}:normal", "*", "job", str(i))
    S.redis.cmd("XREADGROUP", "GROUP", "workers", "w1", "COUNT", "2", "STREAMS", f"{k}:normal", ">")
    S.redis.cmd("XADD", f"{k}:dead", "*", "job", "x")
    S.redis.cmd("SADD", "sluice:queues", name)

    def seen():
        r = S.server.call("GET", f"/v1/queues/{name}", "viewer")
        return r.status == 200 and r.json()

    q = wait_until(seen, 10, "the queue inspected")
    assert q["exists"] and q["length"] == 5 and q["active"] == 2 and q["waiting"] == 3, q
    assert q["dead"] == 1 and q["lanes"]["normal"]["consumers"][0]["name"] == "w1", q
    assert q["oldest_pending_age_ms"] >= 0
    names = [x["name"] for x in S.server.call("GET", "/v1/queues", "viewer").json()["queues"]]
    assert name in names, names
    assert S.server.call("GET", "/v1/queues/nope", "viewer").status == 404
