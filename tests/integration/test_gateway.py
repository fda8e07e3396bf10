"""sluice-agent --role gateway against a real fleet: a Redis registry, sluice-shortener
replicas each behind a sidecar sluice-agent, and the gateway discovering them
(--discover). Load comes from threads with kept-alive connections that record every
answer and which replica's sidecar served it (its Via entry).

docs/gateway.md is the contract: discovery, round robin, drain, kill -9 and ejection,
retries (never a POST once sent), gateway-scope limits, the edge cache."""

import http.client as httplib
import json
import os
import signal
import threading
import time

import harness
from harness import LOOPBACK, Program, free_port, wait_until

import agent_fixture
from agent_fixture import wait_binary
from upstream import Upstream

TEST_TIMEOUT_S = 90
RUN = os.urandom(3).hex()
TOKEN = "it-gw-" + os.urandom(6).hex()
SERVICE = "gw-svc-" + RUN
HEALTH_MS = 300


class S:
    redis = None
    replicas = []  # Replica
    gateway = None


class Sidecar(agent_fixture.Agent):
    token = TOKEN
    id_prefix = "gw-side"
    run = RUN
    label_prefix = "gw-sidecar"


class Replica:
    """One sluice-shortener and its sidecar, registered under SERVICE."""

    def __init__(self, n):
        self.n = n
        self.app = None
        self.side = None

    def start(self):
        port = free_port()
        self.app = Program("sluice-shortener", ["--listen", f"{LOOPBACK}:{port}", "--redis",
                                                S.redis.url], port=port,
                           label=f"gw-shortener-{self.n}").start()
        self.app.wait_http_ready("/readyz", timeout_s=10)
        self.side = Sidecar(port, redis=S.redis, service=SERVICE, workers=1,
                            agent_id=f"gw-side-{RUN}-{self.n}").start()
        return self

    @property
    def id(self):
        return self.side.id

    def stop(self):
        if self.side is not None:
            self.side.prog.stop()
        if self.app is not None:
            self.app.stop()


class Gateway:
    def __init__(self, *extra, label="gateway"):
        self.port = free_port()
        self.admin_port = free_port()
        self.id = f"gw-{RUN}-{label}"
        args = ["--role", "gateway", "--listen", f"{LOOPBACK}:{self.port}", "--admin",
                f"{LOOPBACK}:{self.admin_port}", "--admin-token", TOKEN, "--id", self.id,
                "--workers", "1", "--redis", S.redis.url, "--health-interval-ms", str(HEALTH_MS),
                "--health-timeout-ms", "250"]
        if not any(a in ("--upstreams", "--discover") for a in extra):
            args += ["--discover", SERVICE]
        self.prog = Program("sluice-agent", args + list(extra), port=self.admin_port, label=label)

    def start(self):
        agent_fixture.retry_exec(self.prog.start, "start gateway")
        self.prog.wait_http_ready("/healthz", timeout_s=10)
        return self

    def stop(self):
        self.prog.stop()

    def stats(self):
        return harness.http("GET", f"http://{LOOPBACK}:{self.admin_port}/v1/stats").json()

    def upstream(self, sidecar_port):
        for u in self.stats()["gateway"]["upstreams"]:
            if u["name"] == f"{LOOPBACK}:{sidecar_port}":
                return u
        return None

    def routable(self):
        return {u["name"] for u in self.stats()["gateway"]["upstreams"] if u["routable"]}

    def admin(self, method, path, body):
        return harness.http(method, f"http://{LOOPBACK}:{self.admin_port}{path}",
                            {"Authorization": f"Bearer {TOKEN}"}, body)

    def get(self, path, headers=None, method="GET", body=None):
        return harness.http(method, f"http://{LOOPBACK}:{self.port}{path}", headers, body)


def served_by(resp):
    """The sidecar that served an answer: the first Via entry that is one of ours (resp: a
    harness.Response, or the Via value itself)."""
    via = resp if isinstance(resp, str) else resp.headers.get("via", "")
    for part in via.split(","):
        words = part.split()
        if len(words) == 2 and words[1].startswith("gw-side-"):
            return words[1]
    return None


class Load:
    """threads × kept-alive GETs of path through the gateway until stop(); every answer
    counted by status and serving replica, every failure (no answer) counted."""

    def __init__(self, port, path="/healthz", threads=4):
        self.port, self.path, self.nthreads = port, path, threads
        self.lock = threading.Lock()
        self.by_replica = {}
        self.statuses = {}
        self.failures = []
        self.running = True
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        conn = None
        while self.running:
            try:
                if conn is None:
                    conn = httplib.HTTPConnection(LOOPBACK, self.port, timeout=5)
                conn.request("GET", self.path)
                r = conn.getresponse()
                r.read()
                who = served_by(r.getheader("Via") or "")
                with self.lock:
                    self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                    self.by_replica[who] = self.by_replica.get(who, 0) + 1
                    if r.status >= 500:
                        self.failures.append(r.status)
            except (OSError, httplib.HTTPException) as e:
                with self.lock:
                    self.failures.append(repr(e))
                if conn is not None:
                    conn.close()
                conn = None

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def count(self, replica_id):
        with self.lock:
            return self.by_replica.get(replica_id, 0)

    def total(self):
        with self.lock:
            return sum(self.statuses.values())

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(timeout=10)


def setup_module():
    wait_binary()
    wait_binary("sluice-shortener")
    S.redis = harness.RedisServer().start()
    S.replicas = [Replica(i).start() for i in range(3)]
    S.gateway = Gateway().start()
    wait_until(lambda: len(S.gateway.routable()) == 3, 10, "three routable upstreams")


def teardown_module():
    try:
        if S.gateway:
            S.gateway.stop()
        for r in S.replicas:
            r.stop()
    finally:
        if S.redis:
            S.redis.stop()


def fresh_fleet_ready():
    """Every replica serving and routable again (tests leave the fleet as they found it)."""
    wait_until(lambda: len(S.gateway.routable()) == len([r for r in S.replicas if r.side.prog.running]),
               10, "the fleet routable")


# --- tests --------------------------------------------------------------------------------


def test_round_robin_is_exact_over_the_discovered_replicas():
    counts = {}
    conn = httplib.HTTPConnection(LOOPBACK, S.gateway.port, timeout=5)  # one worker, one conn
    try:
        for _ in range(30):
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            r.read()
            assert r.status == 200
            who = served_by(r.getheader("Via") or "")
            counts[who] = counts.get(who, 0) + 1
    finally:
        conn.close()
    assert sorted(counts) == sorted(r.id for r in S.replicas), counts
    assert set(counts.values()) == {10}, counts
    st = S.gateway.stats()["gateway"]
    assert st["lb"] == "round_robin" and st["upstreams_total"] == 3
    assert all(u["discovered"] and u["state"] == "serving" for u in st["upstreams"]), st


def test_drain_under_load_loses_nothing_and_stops_the_replica_s_traffic():
    victim = S.replicas[1]
    load = Load(S.gateway.port).start()
    try:
        wait_until(lambda: load.count(victim.id) > 20, 10, "traffic on every replica")
        r = victim.side.admin("POST", "/v1/drain", {"timeout_s": 30})
        assert r.status in (200, 202), r
        name = f"{LOOPBACK}:{victim.side.port}"
        wait_until(lambda: name not in S.gateway.routable(), 2 * HEALTH_MS / 1000 + 2,
                   "the gateway to stop routing to the drained replica")
        assert S.gateway.upstream(victim.side.port)["state"] in ("draining", "drained")
        before = load.count(victim.id)
        total = load.total()
        wait_until(lambda: load.total() > total + 300, 20, "300 more requests")
        # in flight at the moment it left the pool: at most one per load thread
        assert load.count(victim.id) - before <= load.nthreads, (before, load.count(victim.id))
    finally:
        load.stop()
        victim.side.admin("POST", "/v1/undrain", {})
    assert load.failures == [], load.failures[:5]
    fresh_fleet_ready()


def test_kill_9_of_a_sidecar_ejects_it_and_gets_retried():
    victim = S.replicas[2]
    name = f"{LOOPBACK}:{victim.side.port}"
    load = Load(S.gateway.port).start()
    try:
        wait_until(lambda: load.count(victim.id) > 20, 10, "traffic on the victim")
        os.kill(victim.side.prog.pid, signal.SIGKILL)
        victim.side.prog.proc.wait(timeout=10)
        # passive (connect failures) or active (fall × interval) takes it out
        wait_until(lambda: name not in S.gateway.routable(), 3 * HEALTH_MS / 1000 + 2,
                   "the dead replica out of the pool")
        total = load.total()
        wait_until(lambda: load.total() > total + 300, 20, "300 more requests")
    finally:
        load.stop()
    # GETs that met the dead replica were retried on another one; only an answer already
    # being relayed at the kill may fail (at most one per load thread)
    assert len(load.failures) <= load.nthreads, load.failures[:5]
    st = S.gateway.stats()["gateway"]
    assert st["retries"] >= 1, st  # the connects refused before its ejection went elsewhere
    u = S.gateway.upstream(victim.side.port)
    assert u is None or u["state"] in ("down", "ejected"), u
    # its registry record expires (5 s): the gateway forgets it; a new replica joins
    S.replicas[2] = Replica(3).start()
    new = f"{LOOPBACK}:{S.replicas[2].side.port}"
    wait_until(lambda: new in S.gateway.routable(), 10, "the new replica routable")
    wait_until(lambda: S.gateway.upstream(victim.side.port) is None, 15,
               "the dead replica removed after its registry record expired")
    victim.app.stop()
    seen = set()
    for _ in range(9):
        seen.add(served_by(S.gateway.get("/healthz")))
    assert S.replicas[2].id in seen, seen


def test_post_is_never_retried_once_sent_but_a_get_is():
    victim = S.replicas[0]
    r = victim.side.admin("PUT", "/v1/faults",
                          {"faults": [{"kind": "reset", "percent": 100, "ttl_s": 60}]})
    assert r.status == 200, r
    try:
        before = S.gateway.stats()["gateway"]["retries"]
        codes = [S.gateway.get("/v1/links", {"Content-Type": "application/json"}, "POST",
                               json.dumps({"url": "https://example.com/x"}).encode()).status
                 for _ in range(6)]
        # the POSTs that reached the resetting sidecar fail (502); the others are answered
        # by the shortener itself (401: no API key) — none is retried elsewhere
        assert codes.count(502) == 2 and codes.count(401) == 4, codes
        assert S.gateway.stats()["gateway"]["retries"] == before
        codes = [S.gateway.get("/healthz").status for _ in range(6)]
        assert codes == [200] * 6, codes
        assert S.gateway.stats()["gateway"]["retries"] >= before + 2
    finally:
        victim.side.admin("DELETE", "/v1/faults", None)
    fresh_fleet_ready()


def test_weights_and_algorithm_change_live():
    side0 = S.replicas[0].side
    r = S.gateway.admin("PUT", "/v1/upstreams/weight", {"upstream": side0.id, "weight": 0})
    assert r.status == 200, r
    seen = {served_by(S.gateway.get("/healthz")) for _ in range(12)}
    assert side0.id not in seen and len(seen) == 2, seen
    r = S.gateway.admin("PUT", "/v1/upstreams/weight", {"upstream": side0.id, "weight": 100})
    assert r.status == 200
    assert S.gateway.admin("PUT", "/v1/lb", {"algorithm": "hash:header:X-User"}).status == 200
    picks = {served_by(S.gateway.get("/healthz", {"X-User": "alice"})) for _ in range(10)}
    assert len(picks) == 1, picks  # one key, one replica
    bad = S.gateway.admin("PUT", "/v1/lb", {"algorithm": "random"})
    assert bad.status == 422 and bad.json()["errors"][0]["field"] == "algorithm", bad.json()
    assert S.gateway.admin("PUT", "/v1/lb", {"algorithm": "round_robin"}).status == 200
    assert S.gateway.stats()["gateway"]["lb"] == "round_robin"


def test_gateway_scope_rate_limit_answers_429_at_the_edge():
    policy = {"name": f"gw-edge-{RUN}", "scope": "gateway",
              "match": {"path_prefix": "/healthz"}, "key": "global",
              "algorithm": "fixed_window", "limit": 3, "window_ms": 60000, "store": "local"}
    S.redis.cmd("HSET", "sluice:policies", policy["name"], json.dumps(policy))
    v = S.redis.cmd("INCR", "sluice:policies:version")
    S.redis.cmd("PUBLISH", "sluice:policies:changed", str(v))
    try:
        wait_until(lambda: S.gateway.stats()["policy_version"] >= v, 10, "the gateway applied it")
        codes = [S.gateway.get("/healthz").status for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429], codes
        # the same policy is not the sidecars' (scope: gateway)
        assert S.replicas[0].side.get("/healthz").status == 200
    finally:
        S.redis.cmd("HDEL", "sluice:policies", policy["name"])
        v = S.redis.cmd("INCR", "sluice:policies:version")
        S.redis.cmd("PUBLISH", "sluice:policies:changed", str(v))
        wait_until(lambda: S.gateway.stats()["policy_version"] >= v, 10, "the policy removed")


def test_static_upstreams_edge_cache_honours_cdn_cache_control():
    up = Upstream().start()
    try:
        side = Sidecar(up.port, "--cache-bytes", "1000000", workers=1).start()
        # a static upstream is checked at its own address: the test upstream's /status/200
        gw = Gateway("--upstreams", f"{LOOPBACK}:{side.port}", "--cache-bytes", "1000000",
                     "--health-path", "/status/200", label="gateway-edge").start()
        try:
            wait_until(lambda: len(gw.routable()) == 1, 10, "the static upstream up")
            p = f"/cache?t=edge{RUN}&cc=no-store&cdn=max-age%3D60"
            r1, r2 = gw.get(p), gw.get(p)
            # the sidecar's X-Cache comes first, the gateway's last
            assert r1.headers["x-cache"] == "BYPASS, MISS", r1.headers
            assert r2.headers["x-cache"] == "HIT", r2.headers
            assert r2.headers["x-request-id"] != r1.headers["x-request-id"], "not replayed"
            assert r2.json()["n"] == 1
            # the sidecar (a shared cache, not the edge) obeys Cache-Control: no-store
            assert side.get(p).headers["x-cache"] == "BYPASS"
            assert up.server.cache_served[p] == 2
        finally:
            gw.stop()
            side.stop_ok()
    finally:
        up.stop()


def test_bad_gateway_flags_are_refused_with_the_flag_named():
    cases = [
        (["--role", "gateway"], b"--upstreams"),
        (["--role", "gateway", "--upstreams", "127.0.0.1:1", "--lb", "random"], b"--lb"),
        (["--role", "gateway", "--discover", "x"], b"--discover: needs --redis"),
        (["--upstreams", "127.0.0.1:1", "--upstream", "127.0.0.1:2"], b"only with --role gateway"),
        (["--role", "gateway", "--upstreams", "nohostport"], b"--upstreams"),
    ]
    for args, want in cases:
        cp = agent_fixture.run_agent(args + ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        assert cp.returncode == 2 and want in cp.stderr, (args, cp.stderr)


def _spans_with_trace(trace_id):
    out = []
    for _, fields in S.redis.cmd("XRANGE", "sluice:spans", "-", "+"):
        doc = json.loads(dict(zip(fields[::2], fields[1::2]))["otlp"])
        for rs in doc["resourceSpans"]:
            res = {x["key"]: next(iter(x["value"].values())) for x in rs["resource"]["attributes"]}
            for ss in rs["scopeSpans"]:
                out += [(res, sp) for sp in ss["spans"] if sp["traceId"] == trace_id]
    return out


def test_the_gateway_span_is_the_parent_of_the_sidecar_span():
    # a sampled traceparent: every hop records its span and ships it to sluice:spans
    trace, parent = os.urandom(16).hex(), os.urandom(8).hex()
    r = S.gateway.get("/healthz", {"traceparent": f"00-{trace}-{parent}-01"})
    assert r.status == 200
    found = wait_until(lambda: len(_spans_with_trace(trace)) == 2 and _spans_with_trace(trace), 10,
                       "the gateway's and the sidecar's spans")
    by_role = {res["sluice.role"]: sp for res, sp in found}
    assert set(by_role) == {"gateway", "sidecar"}, found
    assert by_role["gateway"]["parentSpanId"] == parent
    assert by_role["sidecar"]["parentSpanId"] == by_role["gateway"]["spanId"], by_role
