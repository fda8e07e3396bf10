"""Integration tests of the agent's live rate limits (DESIGN §4.2, docs/agent.md "Rate limits",
docs/ratelimiting.md) and the issue's end-to-end bar: change a policy in Redis while traffic
flows; every agent reports the new version within 1 s and the admitted rate follows it.

Real processes on 127.0.0.1 only: sluice-agent(s), redis-server, and the test upstream of
upstream.py (in this process). Policies are published the way the control plane does it:
HSET sluice:policies NAME JSON; INCR sluice:policies:version; PUBLISH sluice:policies:changed V
(HDEL + INCR + PUBLISH to delete). Every wait polls with a deadline; the only wall-clock bound
asserted is the 1 s convergence contract. Counts are made deterministic by the choice of
algorithm and window: sliding logs of 60 s (no grid), or fixed windows whose grid is read from
the clock that decides (the agent's CLOCK_MONOTONIC for the local store, Redis TIME for the
Redis store) and chosen so the test cannot straddle a window boundary.
"""

import contextlib
import json
import os
import re
import socket
import threading
import time

import agent_fixture
import harness
from agent_fixture import wait_binary
from harness import LOOPBACK, RedisServer, http_keepalive, wait_until
from upstream import Upstream

TEST_TIMEOUT_S = 40
TOKEN = "it-rl-token-" + os.urandom(6).hex()
RUN = os.urandom(3).hex()
PROBLEM_CT = "application/problem+json"
CONVERGENCE_S = 1.0  # the contract: every agent runs the new version within 1 s


class S:  # module state
    up = None


def setup_module():
    wait_binary()  # the build may be rewriting the binary for a moment
    S.up = Upstream().start()


def teardown_module():
    if S.up is not None:
        S.up.stop()


# --- agents ----------------------------------------------------------------------------------


class Agent(agent_fixture.Agent):
    """A sluice-agent (agent_fixture.Agent) in front of the module's upstream; `with` stops it
    by PID and, when the block ended cleanly, asserts exit code 0 on SIGTERM."""

    token = TOKEN
    id_prefix = "rl"
    run = RUN
    label_prefix = "rl-agent"
    log_level = "info"

    def __init__(self, *extra, **kw):
        super().__init__(S.up.port, *extra, **kw)


ZERO = {"allowed": 0, "limited": 0, "shadow_limited": 0, "store_errors": 0, "fallback_local": 0,
        "failed_open": 0, "failed_closed": 0}


def counts(**kw):
    d = dict(ZERO)
    d.update(kw)
    return d


def metric(text, family, policy=None):
    """The value of one sample of /metrics (a family with an optional policy label)."""
    label = "" if policy is None else f'{{policy="{policy}"}}'
    for line in text.splitlines():
        if line.startswith(family + label + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {family}{label} in /metrics")


# --- RateLimit fields (draft-ietf-httpapi-ratelimit-headers-10) ----------------------------------

_NAME = r'"([A-Za-z0-9._-]+)"'
_POLICY_ITEM = _NAME + r";q=(\d+);w=(\d+)"
_LIMIT_ITEM = _NAME + r";r=(\d+);t=(\d+)"


def _sf_list(value, item, field):
    assert re.fullmatch(f"{item}(?:, {item})*", value), f"{field}: not draft-10 syntax: {value!r}"
    return {m[0]: (int(m[1]), int(m[2])) for m in re.findall(item, value)}


def rl(resp):
    """{policy: (q, w, r, t)} from RateLimit-Policy and RateLimit; {} when neither is there.
    Asserts the draft-10 syntax and that both fields name the same policies."""
    pol, lim = resp.headers.get("ratelimit-policy"), resp.headers.get("ratelimit")
    assert (pol is None) == (lim is None), f"one RateLimit field without the other: {resp.headers}"
    if pol is None:
        return {}
    p, l = _sf_list(pol, _POLICY_ITEM, "RateLimit-Policy"), _sf_list(lim, _LIMIT_ITEM, "RateLimit")
    assert list(p) == list(l), f"RateLimit-Policy {pol!r} and RateLimit {lim!r} name different policies"
    return {n: p[n] + l[n] for n in p}


def assert_no_rl(resp, where):
    names = [k for k in resp.headers if "ratelimit" in k]
    assert not names, f"{where}: a response no policy covered carries {names}: {resp.headers}"


def assert_limited(resp, name, path, where):
    """A 429 of policy `name`: problem document whose type names it, Retry-After, fields."""
    assert resp.status == 429, f"{where}: expected 429, got {resp.status} {resp.body[:300]!r}"
    ctype = resp.headers.get("content-type", "").split(";")[0].strip()
    assert ctype == PROBLEM_CT, f"{where}: content-type {ctype!r}"
    doc = resp.json()
    assert doc["type"] == f"urn:sluice:problem:rate-limited:{name}", f"{where}: {doc}"
    assert doc["status"] == 429 and doc["title"] == "Too Many Requests", f"{where}: {doc}"
    assert doc["instance"] == path, f"{where}: instance {doc.get('instance')!r}, expected {path!r}"
    assert isinstance(doc.get("detail"), str) and name in doc["detail"], f"{where}: {doc}"
    ra = resp.headers.get("retry-after")
    assert ra is not None and re.fullmatch(r"[1-9]\d*", ra), f"{where}: Retry-After {ra!r}"
    fields = rl(resp)
    assert name in fields and fields[name][2] == 0, f"{where}: RateLimit fields {fields}"
    return doc, int(ra)


# --- clocks: which window a request falls in -------------------------------------------------------


def mono_ms():
    """The agent's clock for the local store (CLOCK_MONOTONIC, as time.monotonic on Linux)."""
    return int(time.monotonic() * 1000)


def redis_ms(redis):
    """Redis TIME in ms: the clock of the Redis store's scripts."""
    s, us = redis.cmd("TIME")
    return int(s) * 1000 + int(us) // 1000


def window_clear_of_boundary(now_ms, margin_ms=25000, base_ms=60000):
    """A fixed window W (whole seconds, >= base) whose current aligned window has at least
    margin_ms left, so that a test of a few seconds stays inside one window."""
    for i in range(600):
        w = base_ms + 1000 * i
        if w - now_ms % w >= margin_ms:
            return w
    raise AssertionError("no window clear of a boundary")


def ceil_s(ms):
    return (ms + 999) // 1000


def t_bounds(end_ms, before_ms, after_ms, slack_ms=2):
    """The seconds-until-end a decision made between before and after can report."""
    return ceil_s(end_ms - after_ms - slack_ms), ceil_s(end_ms - before_ms + slack_ms)


# --- policies ----------------------------------------------------------------------------------------


def pol(name, prefix, algorithm="sliding_log", limit=3, window_ms=60000, key="global",
        store="local", **kw):
    d = {"name": name, "match": {"path_prefix": prefix}, "key": key, "algorithm": algorithm,
         "limit": limit, "window_ms": window_ms, "store": store}
    if "methods" in kw:
        d["match"]["methods"] = kw.pop("methods")
    d.update(kw)
    return d


def publish(redis, set_=None, delete=(), raw=None):
    """Change the policies in Redis the control plane's way. set_: {name: doc}; raw: {name:
    text} stored as is. Returns (version, monotonic time just before the PUBLISH)."""
    for name, doc in (set_ or {}).items():
        redis.cmd("HSET", "sluice:policies", name, json.dumps(doc))
    for name, text in (raw or {}).items():
        redis.cmd("HSET", "sluice:policies", name, text)
    for name in delete:
        redis.cmd("HDEL", "sluice:policies", name)
    v = redis.cmd("INCR", "sluice:policies:version")
    t = time.monotonic()
    redis.cmd("PUBLISH", "sluice:policies:changed", v)
    return v, t


def wait_version(agents, version, t_pub=None, timeout_s=5.0):
    """Poll every agent's /v1/stats until each reports `version`; returns the seconds from
    t_pub until the last one did (polled tightly, so it is an upper bound)."""
    seen = {}

    def all_there():
        for a in agents:
            if a not in seen and a.version() == version:
                seen[a] = time.monotonic()
        return len(seen) == len(agents)

    wait_until(all_there, timeout_s, f"policy_version {version} on every agent", interval_s=0.005)
    return (max(seen.values()) - t_pub) if t_pub is not None else None, seen


def put_override(agent, docs):
    r = agent.admin("PUT", "/v1/policies", {"policies": docs})
    assert r.status == 200, f"PUT /v1/policies: {r.status} {r.body[:500]!r}"
    return r.json()


def error_fields(resp):
    assert resp.status == 422, f"expected 422, got {resp.status} {resp.body[:300]!r}"
    doc = resp.json()
    assert doc["type"] == "urn:sluice:problem:validation-failed", doc
    return {e["field"]: e["message"] for e in doc["errors"]}


def upstream_count(marker):
    return sum(1 for p in S.up.paths() if marker in p)


# === tests =============================================================================================


def test_local_override_without_redis_fixed_window_exactly_5_then_429_with_fields():
    with contextlib.ExitStack() as st:
        a = st.enter_context(Agent(workers=2, label="rl-local").start())
        legacy = st.enter_context(Agent("--ratelimit-legacy-headers", workers=1,
                                        label="rl-legacy").start())
        p = a.policies()
        assert p["policies"] == [] and p["sync"]["local_override"] is False, p

        w = window_clear_of_boundary(mono_ms())
        doc = pol("fw", "/echo/fw-" + RUN, algorithm="fixed_window", limit=5, window_ms=w)
        # mutations need the admin token
        for tok in (None, "wrong"):
            r = a.admin("PUT", "/v1/policies", {"policies": [doc]}, token=tok and f"Bearer {tok}")
            assert r.status == 401, f"PUT /v1/policies with token {tok!r}: {r.status}"
        assert a.admin("DELETE", "/v1/policies", token=None).status == 401
        assert a.policies()["policies"] == []
        # an invalid override is refused, naming the field, and changes nothing
        fields = error_fields(a.admin("PUT", "/v1/policies",
                                      {"policies": [dict(doc, limit=0, algorithm="fast")]}))
        assert set(fields) == {"fw.limit", "fw.algorithm"}, fields
        assert a.policies()["policies"] == []

        body = put_override(a, [doc])
        assert body["source"] == "local" and body["sync"]["local_override"] is True, body
        assert [x["name"] for x in body["policies"]] == ["fw"], body
        got = body["policies"][0]
        assert (got["algorithm"], got["limit"], got["window_ms"], got["key"], got["store"],
                got["mode"]) == ("fixed_window", 5, w, "global", "local", "enforce"), got
        assert got["match"]["path_prefix"] == doc["match"]["path_prefix"], got

        path = doc["match"]["path_prefix"] + "/x"
        end = (mono_ms() // w + 1) * w
        for i in range(5):
            t0 = mono_ms()
            r = a.get(path)
            t1 = mono_ms()
            assert r.status == 200, f"request {i + 1} of 5: {r.status} {r.body[:200]!r}"
            q, ww, rem, t = rl(r)["fw"]
            lo, hi = t_bounds(end, t0, t1)
            assert (q, ww, rem) == (5, w // 1000, 4 - i), f"request {i + 1}: {r.headers}"
            assert lo <= t <= hi, f"request {i + 1}: t={t}, expected {lo}..{hi}"
            assert not [k for k in r.headers if k.startswith("x-ratelimit")], r.headers
        for i in range(3):
            t0 = mono_ms()
            r = a.get(path)
            t1 = mono_ms()
            _, retry = assert_limited(r, "fw", path, f"request {6 + i}")
            q, ww, rem, t = rl(r)["fw"]
            lo, hi = t_bounds(end, t0, t1)
            assert (q, ww) == (5, w // 1000) and lo <= t <= hi, (r.headers, lo, hi)
            # fixed window: the wait until admitted is the wait until the window ends
            assert retry == t, f"Retry-After {retry} != RateLimit t={t}"
        assert upstream_count(doc["match"]["path_prefix"]) == 5, "429s must not reach the upstream"

        # a request no policy matches passes without the fields
        r = a.get("/echo/unlimited-" + RUN)
        assert r.status == 200
        assert_no_rl(r, "unmatched path")

        assert a.counters("fw") == counts(allowed=5, limited=3), a.stats()["limiter"]
        m = a.metrics()
        assert metric(m, "sluice_ratelimit_allowed_total", "fw") == 5
        assert metric(m, "sluice_ratelimit_limited_total", "fw") == 3
        assert metric(m, "sluice_ratelimit_shadow_limited_total", "fw") == 0

        # a bad replacement is refused and the override in force stays
        fields = error_fields(a.admin("PUT", "/v1/policies", {"policies": [dict(doc, key="cookie")]}))
        assert list(fields) == ["fw.key"], fields
        assert_limited(a.get(path), "fw", path, "after a refused override")

        # the legacy fields only with --ratelimit-legacy-headers
        put_override(legacy, [doc])
        lend = (mono_ms() // w + 1) * w
        t0 = mono_ms()
        r = legacy.get(path)
        t1 = mono_ms()
        assert r.status == 200, r
        lo, hi = t_bounds(lend, t0, t1)
        assert r.headers["x-ratelimit-limit"] == "5" and r.headers["x-ratelimit-remaining"] == "4", r.headers
        assert lo <= int(r.headers["x-ratelimit-reset"]) <= hi, r.headers
        assert rl(r)["fw"][:3] == (5, w // 1000, 4), r.headers

        # DELETE removes the override: no limit, no fields
        r = a.admin("DELETE", "/v1/policies")
        assert r.status == 204, r
        p = a.policies()
        assert p["policies"] == [] and p["sync"]["local_override"] is False, p
        for _ in range(3):
            r = a.get(path)
            assert r.status == 200, r
            assert_no_rl(r, "after DELETE /v1/policies")


def test_keys_ip_route_header_global_and_match_by_method_and_prefix():
    routes = os.path.join(harness.tmp_root(), f"routes-{RUN}.json")
    with open(routes, "w") as f:
        json.dump({"routes": ["/echo/k-route/one/{id}", "/echo/k-route/two/{id}"]}, f)
    with contextlib.ExitStack() as st:
        a = st.enter_context(Agent("--routes", routes, workers=2, label="rl-keys").start())
        put_override(a, [
            pol("k-ip", "/echo/k-ip", limit=2, key="ip"),
            pol("k-hdr", "/echo/k-hdr", limit=2, key="header:X-API-Key"),
            pol("k-route", "/echo/k-route", limit=2, key="route"),
            pol("k-global", "/echo/k-global", limit=2, key="global", methods=["POST", "PUT"]),
            pol("k-gw", "/echo/k-gw", limit=1, scope="gateway"),
        ])

        def burst(path, n_ok, name, **kw):
            for i in range(n_ok):
                r = a.get(path, **kw)
                assert r.status == 200, f"{path} {kw} #{i + 1}: {r.status} {r.body[:200]!r}"
                assert rl(r)[name][2] == n_ok - 1 - i, r.headers
            assert_limited(a.get(path, **kw), name, path, f"{path} {kw} #{n_ok + 1}")

        # ip: each client address its own bucket
        burst("/echo/k-ip/a", 2, "k-ip")
        burst("/echo/k-ip/b", 0, "k-ip")  # same peer, other path: same bucket
        burst("/echo/k-ip/a", 2, "k-ip", source="127.0.0.2")
        burst("/echo/k-ip/a", 2, "k-ip", source="127.0.0.3")

        # header:NAME: each value its own bucket; the name matches case-insensitively;
        # requests without the header share one bucket
        burst("/echo/k-hdr", 2, "k-hdr", headers={"X-API-Key": "alpha"})
        burst("/echo/k-hdr", 0, "k-hdr", headers={"x-api-key": "alpha"})
        burst("/echo/k-hdr", 2, "k-hdr", headers={"X-API-Key": "beta"})
        burst("/echo/k-hdr", 2, "k-hdr")
        burst("/echo/k-hdr", 0, "k-hdr", headers={"X-Other": "alpha"})
        burst("/echo/k-hdr", 0, "k-hdr", source="127.0.0.2")
        burst("/echo/k-hdr", 2, "k-hdr", headers={"X-API-Key": "gamma"}, source="127.0.0.2")

        # route: paths of one route template share a bucket, whoever sends them
        r = a.get("/echo/k-route/one/1")
        assert r.status == 200 and rl(r)["k-route"][2] == 1, r
        r = a.get("/echo/k-route/one/2", source="127.0.0.2")
        assert r.status == 200 and rl(r)["k-route"][2] == 0, r
        burst("/echo/k-route/one/3", 0, "k-route")
        burst("/echo/k-route/two/1", 2, "k-route")

        # global + methods: GET is not covered (no fields); POST and PUT share one bucket
        for i in range(4):
            r = a.get("/echo/k-global/x")
            assert r.status == 200, r
            assert_no_rl(r, "GET on a POST/PUT policy")
        r = a.get("/echo/k-global/x", method="POST", source="127.0.0.2")
        assert r.status == 200 and rl(r)["k-global"][2] == 1, r
        r = a.get("/echo/k-global/y", method="PUT", headers={"X-API-Key": "z"})
        assert r.status == 200 and rl(r)["k-global"][2] == 0, r
        assert_limited(a.get("/echo/k-global/x", method="POST", source="127.0.0.3"), "k-global",
                       "/echo/k-global/x", "third POST/PUT")
        # scope: a gateway policy does not apply on a sidecar
        for i in range(3):
            r = a.get("/echo/k-gw")
            assert r.status == 200, r
            assert_no_rl(r, "gateway-scope policy on a sidecar")
        # path prefix: a near miss is not covered
        r = a.get("/echo/k-glob")
        assert r.status == 200
        assert_no_rl(r, "/echo/k-glob is not under /echo/k-global")

        st_ = {p["policy"]: p for p in a.stats()["limiter"]["policies"]}
        assert (st_["k-ip"]["allowed"], st_["k-ip"]["limited"]) == (6, 4), st_["k-ip"]
        assert (st_["k-hdr"]["allowed"], st_["k-hdr"]["limited"]) == (8, 7), st_["k-hdr"]
        assert (st_["k-route"]["allowed"], st_["k-route"]["limited"]) == (4, 2), st_["k-route"]
        assert (st_["k-global"]["allowed"], st_["k-global"]["limited"]) == (2, 1), st_["k-global"]


def test_shadow_mode_decides_and_counts_but_never_rejects_and_fields_on_every_status():
    with contextlib.ExitStack() as st:
        a = st.enter_context(Agent(workers=2, label="rl-shadow").start())
        put_override(a, [
            pol("sh", "/echo/sh", limit=2, mode="shadow"),
            pol("enf", "/status/", limit=3),
            pol("both-a", "/echo/both", limit=2),
            pol("both-b", "/echo/both", limit=4, mode="shadow"),
        ])
        before = upstream_count("/echo/sh")
        for i in range(6):
            r = a.get("/echo/sh")
            assert r.status == 200, f"shadow request {i + 1}: {r.status} {r.body[:200]!r}"
            assert rl(r)["sh"] == (2, 60, max(0, 1 - i), rl(r)["sh"][3]), r.headers
            assert "retry-after" not in r.headers, r.headers
        assert upstream_count("/echo/sh") - before == 6
        assert a.counters("sh") == counts(allowed=2, shadow_limited=4), a.stats()["limiter"]
        assert metric(a.metrics(), "sluice_ratelimit_shadow_limited_total", "sh") == 4

        # the fields are on every covered response, whatever the upstream answered
        for code in (404, 503, 204):
            r = a.get(f"/status/{code}")
            assert r.status == code, r
            assert "enf" in rl(r), f"/status/{code}: {r.headers}"
        assert_limited(a.get("/status/200"), "enf", "/status/200", "4th on /status/")

        # two policies on one path: both fields, in set order; only the enforcing one refuses
        for i in range(2):
            r = a.get("/echo/both")
            assert r.status == 200 and list(rl(r)) == ["both-a", "both-b"], r.headers
            assert r.headers["ratelimit-policy"] == '"both-a";q=2;w=60, "both-b";q=4;w=60', r.headers
        r = a.get("/echo/both")
        assert_limited(r, "both-a", "/echo/both", "3rd on /echo/both")
        assert list(rl(r)) == ["both-a", "both-b"], r.headers


def test_local_retune_keeps_a_token_bucket_balance_in_proportion():
    # docs/agent.md: "a token bucket's balance is carried over in proportion when its size
    # changes" (rl_state_retune: the fraction in use is kept, rounded up). 10 per minute
    # refills one token every 6 s, far slower than this test.
    with contextlib.ExitStack() as st:
        a = st.enter_context(Agent(workers=2, label="rl-retune-local").start())
        put_override(a, [pol("tb", "/echo/tb", algorithm="token_bucket", limit=10, burst=10)])
        for i in range(5):
            r = a.get("/echo/tb")
            assert r.status == 200 and rl(r)["tb"][:3] == (10, 60, 9 - i), r.headers
        put_override(a, [pol("tb", "/echo/tb", algorithm="token_bucket", limit=20, burst=20)])
        r = a.get("/echo/tb")  # 5 of 10 in use -> 10 of 20 in use; this one takes the 11th
        assert r.status == 200 and rl(r)["tb"][:3] == (20, 60, 9), r.headers
        put_override(a, [pol("tb", "/echo/tb", algorithm="token_bucket", limit=4, burst=4)])
        r = a.get("/echo/tb")  # 11 of 20 in use -> 2.2 of 4, rounded up to 3: one left
        assert r.status == 200 and rl(r)["tb"][:3] == (4, 60, 0), r.headers
        assert_limited(a.get("/echo/tb"), "tb", "/echo/tb", "bucket spent after shrinking")
        assert a.counters("tb") == counts(allowed=7, limited=1), a.stats()["limiter"]


def test_problem_document_is_json_whatever_the_path_holds():
    with contextlib.ExitStack() as st:
        a = st.enter_context(Agent(workers=1, label="rl-odd-path").start())
        put_override(a, [pol("odd", "/echo/odd", limit=1)])
        assert a.get("/echo/odd").status == 200
        for odd in ('/echo/odd/a"b', "/echo/odd/back\\slash", "/echo/odd/%22ok%22"):
            with socket.create_connection((LOOPBACK, a.port), timeout=5) as sock:
                sock.sendall(f"GET {odd}?q=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                             .encode())
                raw = b""
                while chunk := sock.recv(65536):
                    raw += chunk
            head, _, body = raw.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 429 "), raw[:300]
            assert b"\r\ncontent-type: application/problem+json" in head.lower(), head
            try:
                doc = json.loads(body)
            except ValueError:
                raise AssertionError(f"429 body for the path {odd!r} is not JSON: {body!r}") from None
            assert doc["type"] == "urn:sluice:problem:rate-limited:odd", doc
            assert doc["instance"] == odd, f"instance {doc['instance']!r}, expected {odd!r}"


def test_invalid_policies_in_redis_rejected_naming_the_field_and_previous_set_stays():
    redis = RedisServer(name="redis-rl-invalid").start()
    with contextlib.ExitStack() as st:
        st.callback(redis.stop)
        a = st.enter_context(Agent(redis=redis, service=f"inv-{RUN}", label="rl-invalid").start())
        good = pol("good", "/echo/good", limit=3, store="redis")
        v_good, t = publish(redis, {"good": good})
        took, _ = wait_version([a], v_good, t)
        assert took <= CONVERGENCE_S, f"applied after {took:.3f}s"
        assert rl(a.get("/echo/good"))["good"][:3] == (3, 60, 2)

        bad_cases = [
            ("algorithm", dict(good, name="bad", algorithm="leaky"), "bad.algorithm"),
            ("limit 0", dict(good, name="bad", limit=0), "bad.limit"),
            ("limit < 0", dict(good, name="bad", limit=-5), "bad.limit"),
            ("limit string", dict(good, name="bad", limit="100"), "bad.limit"),
            ("no limit", {k: v for k, v in dict(good, name="bad").items() if k != "limit"}, "bad.limit"),
            ("window 0", dict(good, name="bad", window_ms=0), "bad.window_ms"),
            ("window < 0", dict(good, name="bad", window_ms=-1000), "bad.window_ms"),
            ("burst < 0", dict(good, name="bad", algorithm="token_bucket", burst=-1), "bad.burst"),
            ("key", dict(good, name="bad", key="cookie:sid"), "bad.key"),
            ("key header:", dict(good, name="bad", key="header:"), "bad.key"),
            ("key header with space", dict(good, name="bad", key="header:X Y"), "bad.key"),
            ("store", dict(good, name="bad", store="memcached"), "bad.store"),
            ("on_store_error", dict(good, name="bad", on_store_error="retry"), "bad.on_store_error"),
            ("mode", dict(good, name="bad", mode="dry-run"), "bad.mode"),
            ("unknown field", dict(good, name="bad", limt=5), "bad.limt"),
            ("path prefix", dict(good, name="bad", match={"path_prefix": "echo"}), "bad.match.path_prefix"),
            ("sliding log too big", dict(good, name="bad", limit=20000), "bad.limit"),
        ]
        misnamed = []  # checked at the end, so that one misnamed field hides nothing else
        for what, doc, field in bad_cases:
            v, _ = publish(redis, {"bad": doc})

            def rejected():
                rej = a.policies()["sync"].get("rejected")
                return rej if rej and rej["version"] == v else None

            rej = wait_until(rejected, 5, f"version {v} ({what}) rejected")
            if [e["field"] for e in rej["errors"]] != [field]:
                misnamed.append((what, field, rej["errors"]))
            assert all(e["message"] for e in rej["errors"]), rej
            assert a.version() == v_good, f"{what}: policy_version moved off {v_good}"
            pols = a.policies()
            assert pols["version"] == v_good and [p["name"] for p in pols["policies"]] == ["good"], pols
        redis.cmd("HDEL", "sluice:policies", "bad")

        # not JSON: rejected, named by the policy's name
        v, _ = publish(redis, raw={"broken": '{"name": "broken", "limit": '})
        rej = wait_until(lambda: (a.policies()["sync"].get("rejected") or {}).get("version") == v
                         and a.policies()["sync"]["rejected"], 5, "non-JSON rejected")
        assert [e["field"] for e in rej["errors"]] == ["broken"], rej
        redis.cmd("HDEL", "sluice:policies", "broken")

        # the whole set is rejected: a good change next to a bad policy is not applied either
        v, _ = publish(redis, {"good": dict(good, limit=7), "bad": dict(good, name="bad", limit=0)})
        wait_until(lambda: (a.policies()["sync"].get("rejected") or {}).get("version") == v, 5,
                   "mixed set rejected")
        assert a.version() == v_good
        r = a.get("/echo/good")
        assert r.status == 200 and rl(r)["good"][:3] == (3, 60, 1), r.headers  # old terms
        assert a.counters("good") == counts(allowed=2), a.stats()["limiter"]

        # fixing the set applies it (the good one's new terms included)
        v_fix, t = publish(redis, delete=["bad"])
        took, _ = wait_version([a], v_fix, t)
        assert took <= CONVERGENCE_S, f"fixed set applied after {took:.3f}s"
        r = a.get("/echo/good")
        assert r.status == 200 and rl(r)["good"][:3] == (7, 60, 4), r.headers
        assert metric(a.metrics(), "sluice_policy_version") == v_fix
        assert not misnamed, "rejections that do not name the offending field: " + "; ".join(
            f"{what}: expected [{field!r}], got {errs}" for what, field, errs in misnamed)


def test_live_retune_in_redis_while_traffic_flows_every_agent_within_1s_rate_follows():
    redis = RedisServer(name="redis-rl-live").start()
    service = f"live-{RUN}"
    prefix = "/echo/live-" + RUN
    with contextlib.ExitStack() as st:
        st.callback(redis.stop)
        agents = [st.enter_context(Agent(redis=redis, workers=1, service=service,
                                         label=f"rl-live-{i}").start()) for i in range(3)]
        v1, t = publish(redis, {"live": pol("live", prefix, limit=3, store="redis")})
        took, _ = wait_version(agents, v1, t)
        assert took <= CONVERGENCE_S, f"v{v1}: every agent after {took:.3f}s"

        log = []  # (agent index, start, end, status, rl fields)
        lock = threading.Lock()
        stop = threading.Event()
        errors = []

        def traffic(i):
            c = http_keepalive(agents[i].url(""))
            try:
                while not stop.wait(0.004):  # steady pacing, not waiting for anything
                    t0 = time.monotonic()
                    r = c.request("GET", prefix + "/x")
                    t1 = time.monotonic()
                    with lock:
                        log.append((i, t0, t1, r.status, rl(r)))
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)
            finally:
                c.close()

        threads = [threading.Thread(target=traffic, args=(i,), daemon=True) for i in range(3)]
        for th in threads:
            th.start()
        try:
            def snapshot():
                with lock:
                    return list(log)

            def ok(entries):
                return sum(1 for e in entries if e[3] == 200)

            def after(entries, t0, i):
                return [e for e in entries if e[0] == i and e[1] >= t0]

            # v1: 3 admitted between the three agents, then 429s
            wait_until(lambda: sum(1 for e in snapshot() if e[3] == 429) >= 6, 10, "v1 429s")
            assert ok(snapshot()) == 3, f"v1 (limit 3): {ok(snapshot())} admitted"

            phases = [  # (change, expected q (None: no policy), admitted in all after it)
                ({"live": pol("live", prefix, limit=8, store="redis")}, 8, 8),
                ({"live": pol("live", prefix, limit=5, store="redis")}, 5, 8),
                (None, None, None),
            ]
            marks = []
            for change, q, total in phases:
                v, t_pub = publish(redis, change) if change else publish(redis, delete=["live"])
                took, seen = wait_version(agents, v, t_pub)
                print(f"  v{v} on all 3 agents {took * 1000:.0f} ms after the PUBLISH")
                assert not errors, errors
                assert took <= CONVERGENCE_S, \
                    f"v{v}: every agent reported it {took:.3f}s after the PUBLISH (> 1 s)"
                marks.append((v, t_pub, {agents.index(a): s for a, s in seen.items()}, q))

                # the traffic follows: every agent answers under the new terms
                def followed():
                    snap = snapshot()
                    return all(len(after(snap, seen[a], agents.index(a))) >= 5 for a in agents)

                wait_until(followed, 10, f"traffic after v{v}")
                snap = snapshot()
                if total is not None:
                    wait_until(lambda: ok(snapshot()) >= total, 10, f"{total} admitted")
                    t_mark = time.monotonic()
                    wait_until(lambda: all(len(after(snapshot(), t_mark, i)) >= 3 for i in range(3)),
                               10, f"traffic after the {total}th admission")
                    late = [e for e in snapshot() if e[1] >= t_mark]
                    assert all(e[3] == 429 for e in late), f"v{v}: admitting past {total}: {late}"
                    assert ok(snapshot()) == total, \
                        f"v{v}: {ok(snapshot())} admitted in all, expected exactly {total}"
                else:
                    for a in agents:
                        for e in after(snap, seen[a], agents.index(a)):
                            assert e[3] == 200 and e[4] == {}, f"after the delete: {e}"
        finally:
            stop.set()
            for th in threads:
                th.join(timeout=10)
        assert not errors, errors

        # atomic switch: a request started after its agent reported a version is decided
        # under that version's terms; one finished before the PUBLISH under the old ones
        entries = list(log)
        qs = [3] + [m[3] for m in marks]
        for k, (v, t_pub, seen, q) in enumerate(marks):
            nxt = marks[k + 1][1] if k + 1 < len(marks) else float("inf")
            prev_seen = marks[k - 1][2] if k else {i: float("-inf") for i in range(3)}
            for e in entries:
                i, t0, t1, status, fields = e
                if t0 >= seen[i] and t1 < nxt:
                    got = fields["live"][0] if fields else None
                    assert got == q, f"v{v} in force on agent {i}, response says q={got}: {e}"
                if prev_seen[i] <= t0 and t1 < t_pub:
                    got = fields["live"][0] if fields else None
                    assert got == qs[k], f"before v{v}: expected q={qs[k]}, got {got}: {e}"
        # and never back: per agent, the terms only move forward
        order = {q: n for n, q in enumerate(qs)}
        for i in range(3):
            seq = [order[(e[4]["live"][0] if e[4] else None)] for e in entries if e[0] == i]
            assert seq == sorted(seq), f"agent {i} went back to older terms: {seq}"
        statuses = {e[3] for e in entries}
        assert statuses <= {200, 429}, statuses
        allowed = sum(a.counters("live")["allowed"] for a in agents)
        limited = sum(a.counters("live")["limited"] for a in agents)
        assert allowed == 8, f"the agents count {allowed} admitted, expected 8"
        assert limited == sum(1 for e in entries if e[3] == 429), (limited, len(entries))
        for a in agents:
            assert metric(a.metrics(), "sluice_policy_version") == marks[-1][0]


def test_version_polled_when_the_publish_is_lost_and_local_override_wins_over_redis():
    redis = RedisServer(name="redis-rl-poll").start()
    with contextlib.ExitStack() as st:
        st.callback(redis.stop)
        a = st.enter_context(Agent(redis=redis, service=f"poll-{RUN}", label="rl-poll").start())
        v1, t = publish(redis, {"pp": pol("pp", "/echo/pp", limit=3)})
        wait_version([a], v1, t)
        # no PUBLISH (pub/sub is at-most-once): the version poll picks the change up
        redis.cmd("HSET", "sluice:policies", "pp", json.dumps(pol("pp", "/echo/pp", limit=9)))
        v2 = redis.cmd("INCR", "sluice:policies:version")
        wait_version([a], v2, timeout_s=5)
        assert rl(a.get("/echo/pp"))["pp"][:3] == (9, 60, 8)

        # a local override wins over Redis, and Redis changes wait until it is removed
        put_override(a, [pol("ov", "/echo/pp", limit=1)])
        r = a.get("/echo/pp")
        assert r.status == 200 and list(rl(r)) == ["ov"], r.headers
        assert_limited(a.get("/echo/pp"), "ov", "/echo/pp", "override in force")
        v3, _ = publish(redis, {"pp": pol("pp", "/echo/pp", limit=4)})
        assert a.policies()["source"] == "local"
        assert_limited(a.get("/echo/pp"), "ov", "/echo/pp", "override still in force")
        assert a.admin("DELETE", "/v1/policies").status == 204
        wait_version([a], v3, timeout_s=5)
        p = a.policies()
        assert p["source"] == "redis" and [x["limit"] for x in p["policies"]] == [4], p
        r = a.get("/echo/pp")
        assert r.status == 200 and list(rl(r)) == ["pp"] and rl(r)["pp"][0] == 4, r.headers


def test_on_store_error_open_closed_local_with_redis_stopped_and_automatic_recovery():
    # AOF so that the policies and the limiter state survive the restart
    redis = RedisServer(name="redis-rl-down", extra_args=["--appendonly", "yes"]).start()
    service = f"down-{RUN}"
    with contextlib.ExitStack() as st:
        st.callback(redis.stop)
        # one worker each: one limiter connection per agent, so one probe shows recovery
        a = st.enter_context(Agent(redis=redis, workers=1, service=service, label="rl-down-a").start())
        b = st.enter_context(Agent(redis=redis, workers=1, service=service, label="rl-down-b").start())
        docs = {n: pol(n, f"/echo/{n}", limit=4, store="redis", on_store_error=mode)
                for n, mode in (("p-open", "open"), ("p-closed", "closed"), ("p-local", "local"))}
        docs["probe"] = pol("probe", "/echo/probe", limit=100000, window_ms=1000, store="redis",
                            algorithm="fixed_window", on_store_error="closed")
        v, t = publish(redis, docs)
        wait_version([a, b], v, t)
        # "local" falls back to limit ÷ live agents of the service: wait until both count 2
        wait_until(lambda: all(x.stats()["limiter"]["live_agents"] == 2 for x in (a, b)), 10,
                   "both agents registered")
        names = ("p-open", "p-closed", "p-local")
        for n in names:  # one admission each while Redis is up
            r = a.get(f"/echo/{n}")
            assert r.status == 200 and rl(r)[n][2] == 3, (n, r.status, r.headers)
        assert redis.stop() == 0

        # Redis is down
        for x in (a, b):
            for i in range(3):
                r = x.get("/echo/p-open")
                assert r.status == 200, f"open: {r.status} {r.body[:200]!r}"
        for i in range(3):
            r = a.get("/echo/p-closed")
            doc, retry = assert_limited(r, "p-closed", "/echo/p-closed", "closed, Redis down")
            assert "unavailable" in doc["detail"], doc
        for x in (a, b):  # limit 4 ÷ 2 live agents = 2 each, decided locally
            for i in range(2):
                r = x.get("/echo/p-local")
                assert r.status == 200, f"local #{i + 1}: {r.status} {r.body[:200]!r}"
            assert_limited(x.get("/echo/p-local"), "p-local", "/echo/p-local", "local share spent")
        ca, cb = {n: a.counters(n) for n in names}, {n: b.counters(n) for n in names}
        assert ca["p-open"] == counts(allowed=4, store_errors=3, failed_open=3), ca
        assert cb["p-open"] == counts(allowed=3, store_errors=3, failed_open=3), cb
        assert ca["p-closed"] == counts(allowed=1, limited=3, store_errors=3, failed_closed=3), ca
        assert ca["p-local"] == counts(allowed=3, limited=1, store_errors=3, fallback_local=3), ca
        assert cb["p-local"] == counts(allowed=2, limited=1, store_errors=3, fallback_local=3), cb
        m = a.metrics()
        assert metric(m, "sluice_ratelimit_store_errors_total", "p-closed") == 3
        assert metric(m, "sluice_ratelimit_failed_closed_total", "p-closed") == 3
        assert metric(m, "sluice_ratelimit_failed_open_total", "p-open") == 3
        assert metric(m, "sluice_ratelimit_fallback_local_total", "p-local") == 3
        assert a.version() == v and b.version() == v, "the set in force stays while Redis is down"

        # Redis is back: decisions go to Redis again by themselves, with its state
        redis.start()
        for x in (a, b):
            wait_until(lambda: x.get("/echo/probe").status == 200, 15,
                       f"{x.prog.label} deciding in Redis again")
        before = {x: {n: x.counters(n) for n in names} for x in (a, b)}
        for n in names:  # 1 of 4 was used before the outage: exactly 3 more between a and b
            got = [x.get(f"/echo/{n}").status for x in (a, b, a, b, a, b)]
            assert got == [200, 200, 200, 429, 429, 429], f"{n} after recovery: {got}"
            r = b.get(f"/echo/{n}")
            doc, _ = assert_limited(r, n, f"/echo/{n}", f"{n} after recovery")
            assert "unavailable" not in doc["detail"], doc
        for x in (a, b):
            for n in names:
                c = x.counters(n)
                for k in ("store_errors", "failed_open", "failed_closed", "fallback_local"):
                    assert c[k] == before[x][n][k], f"{x.prog.label} {n}: {k} grew after recovery"
        assert a.version() == v and b.version() == v
        # and live changes flow again: a retune after the outage reaches both within 1 s
        v2, t = publish(redis, {"p-closed": dict(docs["p-closed"], limit=6)})
        took, _ = wait_version([a, b], v2, t)
        print(f"  after the outage, v{v2} on both agents in {took * 1000:.0f} ms")
        assert took <= CONVERGENCE_S, f"v{v2} after the outage: every agent after {took:.3f}s"
        got = [x.get("/echo/p-closed").status for x in (a, b, a)]
        assert got == [200, 200, 429], f"p-closed retuned 4 -> 6 with 4 used: {got}"


def _hammer(agents, path, threads_per_agent, n_each):
    """Concurrent keep-alive clients; returns the list of statuses."""
    out, lock, errors = [], threading.Lock(), []
    go = threading.Event()

    def run(port):
        c = http_keepalive(f"http://{LOOPBACK}:{port}")
        try:
            go.wait(10)
            for _ in range(n_each):
                r = c.request("GET", path)
                with lock:
                    out.append(r.status)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            c.close()

    ths = [threading.Thread(target=run, args=(a.port,), daemon=True)
           for a in agents for _ in range(threads_per_agent)]
    for th in ths:
        th.start()
    go.set()
    for th in ths:
        th.join(timeout=30)
    assert not errors, errors
    return out


def test_two_agents_store_redis_exact_combined_admissions_equal_the_limit():
    redis = RedisServer(name="redis-rl-exact").start()
    service = f"exact-{RUN}"
    with contextlib.ExitStack() as st:
        st.callback(redis.stop)
        a = st.enter_context(Agent(redis=redis, service=service, label="rl-exact-a").start())
        b = st.enter_context(Agent(redis=redis, service=service, label="rl-exact-b").start())
        # a fixed window on Redis's clock, chosen clear of its boundary
        w = window_clear_of_boundary(redis_ms(redis))
        v, t = publish(redis, {
            "fw-shared": pol("fw-shared", "/echo/fw-shared", algorithm="fixed_window", limit=20,
                             window_ms=w, store="redis"),
            "sl-shared": pol("sl-shared", "/echo/sl-shared", limit=25, store="redis"),
        })
        wait_version([a, b], v, t)
        end = (redis_ms(redis) // w + 1) * w
        t0 = redis_ms(redis)
        r = a.get("/echo/fw-shared")
        t1 = redis_ms(redis)
        q, ww, rem, tt = rl(r)["fw-shared"]
        lo, hi = t_bounds(end, t0, t1)
        assert r.status == 200 and (q, ww, rem) == (20, w // 1000, 19) and lo <= tt <= hi, \
            (r.headers, lo, hi)
        r = b.get("/echo/fw-shared")  # the other agent sees the same count
        assert r.status == 200 and rl(r)["fw-shared"][2] == 18, r.headers

        statuses = _hammer([a, b], "/echo/fw-shared", 2, 15)
        assert set(statuses) <= {200, 429}, statuses
        assert statuses.count(200) == 18, f"fixed window 20: {statuses.count(200)} + 2 admitted"
        statuses = _hammer([a, b], "/echo/sl-shared", 2, 15)
        assert statuses.count(200) == 25, f"sliding log 25: {statuses.count(200)} admitted"
        for n, lim, total in (("fw-shared", 20, 62), ("sl-shared", 25, 60)):
            ca, cb = a.counters(n), b.counters(n)
            assert ca["allowed"] + cb["allowed"] == lim, (n, ca, cb)
            assert ca["limited"] + cb["limited"] == total - lim, (n, ca, cb)
            assert ca["store_errors"] == cb["store_errors"] == 0, (ca, cb)
        r = a.get("/echo/fw-shared")
        _, retry = assert_limited(r, "fw-shared", "/echo/fw-shared", "fixed window spent")
        assert retry == rl(r)["fw-shared"][3], r.headers
        assert redis.scan_keys("sluice:rl:{fw-shared:}:fw") == ["sluice:rl:{fw-shared:}:fw"]


def test_two_agents_store_redis_lease_over_admission_within_documented_bound():
    redis = RedisServer(name="redis-rl-lease").start()
    service = f"lease-{RUN}"
    workers = 2
    with contextlib.ExitStack() as st:
        st.callback(redis.stop)
        agents = [st.enter_context(Agent(redis=redis, workers=workers, service=service,
                                         label=f"rl-lease-{i}").start()) for i in range(2)]
        # the slice is sized by live agents × workers: wait until both agents count 2
        wait_until(lambda: all(x.stats()["limiter"]["live_agents"] == 2 for x in agents), 10,
                   "both agents registered")
        limit = 200
        v, t = publish(redis, {"lease": pol("lease", "/echo/lease", limit=limit, store="redis_lease")})
        wait_version(agents, v, t)
        instances = len(agents) * workers
        slice_ = max(1, limit // (10 * instances))
        bound = limit + instances * slice_
        statuses = _hammer(agents, "/echo/lease", 3, 80)  # 480 requests for a budget of 200
        assert set(statuses) <= {200, 429}, statuses
        admitted = statuses.count(200)
        print(f"  redis_lease: {admitted} of {len(statuses)} admitted; limit {limit}, "
              f"{instances} instances, slice {slice_}, bound {bound}")
        # at most limit + instances × slice; at least limit − what leases may hold unspent
        assert limit - instances * slice_ <= admitted <= bound, \
            f"redis_lease: {admitted} admitted, documented bound {limit}..{bound} (slice {slice_})"
        allowed = sum(x.counters("lease")["allowed"] for x in agents)
        assert allowed == admitted, (allowed, admitted)
        assert all(x.counters("lease")["store_errors"] == 0 for x in agents)
        # the shared state in Redis never granted more than the limit
        n = redis.cmd("ZCARD", "sluice:rl:{lease:}:sl")
        assert n <= limit, f"Redis holds {n} admissions for a limit of {limit}"
