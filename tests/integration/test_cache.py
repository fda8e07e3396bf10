"""Response cache in the agent (--cache-bytes), against the real sluice-agent and the test
upstream of upstream.py (its /cache fixture: Cache-Control, Vary and ETag from the query,
and a count "n" of how often the upstream itself answered the exact target).

What is covered is what the agent builds so far (docs/agent.md "Response cache"): fresh
hits with Age and X-Cache, 304 from the cache, HEAD from a stored GET, Authorization and
private/no-store answers never shared, Vary variants, invalidation by an unsafe method,
purge, the byte bound, stats and /metrics."""

import os
import subprocess
import sys
import threading
import time

import harness

import agent_fixture
from agent_fixture import wait_binary
from upstream import Upstream

TOKEN = "it-cache-" + os.urandom(6).hex()
RUN = os.urandom(3).hex()


class S:
    up = None
    agent = None


class Agent(agent_fixture.Agent):
    token = TOKEN
    id_prefix = "cache"
    run = RUN
    label_prefix = "cache-agent"

    def __init__(self, *extra, **kw):
        super().__init__(S.up.port, "--cache-bytes", "4000000", "--cache-max-entry-bytes", "8192",
                         *extra, **kw)


def setup_module():
    wait_binary()
    S.up = Upstream().start()
    S.agent = Agent().start()


def teardown_module():
    try:
        if S.agent is not None:
            S.agent.stop_ok()
    finally:
        if S.up is not None:
            S.up.stop()


def target(name, **q):
    return "/cache?t=" + name + RUN + "".join(f"&{k}={v}" for k, v in q.items())


def get(path, headers=None, method="GET"):
    return S.agent.get(path, headers, method=method)


def test_fresh_hit_after_miss_with_age_and_x_cache():
    p = target("a", cc="max-age=60")
    r1, r2 = get(p), get(p)
    assert r1.status == 200 and r1.headers["x-cache"] == "MISS", r1.headers
    assert r2.status == 200 and r2.headers["x-cache"] == "HIT", r2.headers
    assert r2.body == r1.body and r2.json()["n"] == 1, "the hit must not reach the upstream"
    assert int(r2.headers["age"]) >= 0 and "age" not in r1.headers
    assert r2.headers["cache-control"] == "max-age=60"
    assert r2.headers["content-length"] == str(len(r1.body))
    assert S.up.server.cache_served[p] == 1


def test_if_none_match_answered_304_from_cache_and_head_from_a_stored_get():
    p = target("b", cc="max-age=60", etag="v1")
    assert get(p).headers["x-cache"] == "MISS"
    r = get(p, {"If-None-Match": '"v1"'})
    assert r.status == 304 and r.body == b"" and r.headers["x-cache"] == "HIT", r
    assert r.headers["etag"] == '"v1"'
    r = get(p, {"If-None-Match": '"other"'})
    assert r.status == 200 and r.headers["x-cache"] == "HIT" and r.json()["n"] == 1
    h = get(p, method="HEAD")
    assert h.status == 200 and h.body == b"" and h.headers["x-cache"] == "HIT"
    assert int(h.headers["content-length"]) > 0
    assert S.up.server.cache_served[p] == 1


def test_private_no_store_and_authorization_never_shared():
    for cc in ("private,max-age=60", "no-store", "max-age=60"):
        p = target("c" + cc.replace(",", "").replace("=", ""), cc=cc)
        a = get(p, {"Authorization": "Bearer alice"})
        b = get(p, {"Authorization": "Bearer bob"})
        assert a.json()["auth"] == "Bearer alice" and b.json()["auth"] == "Bearer bob", (cc, a, b)
        assert a.headers["x-cache"] == "BYPASS" and b.headers["x-cache"] == "BYPASS", cc
        assert S.up.server.cache_served[p] == 2
    # public lets a shared cache answer authorized requests (RFC 9111 §3.5)
    p = target("cpub", cc="public,max-age=60")
    assert get(p, {"Authorization": "Bearer alice"}).headers["x-cache"] == "MISS"
    r = get(p, {"Authorization": "Bearer bob"})
    assert r.headers["x-cache"] == "HIT" and r.json()["auth"] == "Bearer alice"


def test_vary_keeps_one_variant_per_header_value():
    p = target("d", cc="max-age=60", vary="Accept")
    seen = [get(p, {"Accept": a}) for a in ("text/a", "text/b", "text/a", "text/b")]
    assert [r.headers["x-cache"] for r in seen] == ["MISS", "MISS", "HIT", "HIT"]
    assert [r.json()["accept"] for r in seen] == ["text/a", "text/b", "text/a", "text/b"]
    assert S.up.server.cache_served[p] == 2


def test_unsafe_method_invalidates_and_purge_drops_by_prefix():
    p = target("e", cc="max-age=60")
    get(p)
    assert get(p).headers["x-cache"] == "HIT"
    assert get(p, method="POST").status == 200  # RFC 9111 §4.4: a successful POST invalidates
    r = get(p)
    assert r.headers["x-cache"] == "MISS" and r.json()["n"] == 3
    assert get(p).headers["x-cache"] == "HIT"
    r = S.agent.admin("POST", "/v1/cache/purge", {"prefix": "/cache?t=e" + RUN})
    assert r.status == 200 and r.json()["purged"] >= 1, r
    assert get(p).headers["x-cache"] == "MISS"
    bad = S.agent.admin("POST", "/v1/cache/purge", {"prefix": "cache"})
    assert bad.status == 422 and bad.json()["errors"][0]["field"] == "prefix"
    assert S.agent.admin("POST", "/v1/cache/purge", {"prefix": "/"}, token=None).status == 401


def test_entries_over_the_bound_are_not_stored():
    p = target("f", cc="max-age=60", size="20000")
    assert get(p).headers["x-cache"] == "BYPASS"
    assert get(p).headers["x-cache"] == "BYPASS"
    assert S.up.server.cache_served[p] == 2


def test_stats_and_metrics():
    st = S.agent.stats()["cache"]
    assert st["enabled"] is True and st["policy"] == "s3fifo"
    assert st["hits"] >= 8 and st["misses"] >= 8 and st["bypass"] >= 8
    assert 0 < st["bytes"] <= st["budget_bytes"] == 4000000
    assert st["invalidations"] >= 1 and st["not_modified"] >= 1
    m = S.agent.metrics()
    assert f"\nsluice_cache_hits_total {st['hits']}\n" in m  # no requests in between
    out = subprocess.run(["promtool", "check", "metrics"], input=m.encode(), capture_output=True)
    assert out.returncode == 0, out.stderr


def test_cache_off_by_default_and_bad_policy_refused():
    with agent_fixture.Agent(S.up.port).start() as a:
        r = a.get(target("g", cc="max-age=60"))
        assert "x-cache" not in r.headers
        assert a.stats()["cache"] == {"enabled": False}
    bad = agent_fixture.run_agent(["--upstream", "127.0.0.1:1", "--cache-bytes", "100000",
                                   "--cache-policy", "fifo", "--admin", "127.0.0.1:0",
                                   "--listen", "127.0.0.1:0"])
    assert bad.returncode == 2 and b"--cache-policy" in bad.stderr, bad.stderr


def test_concurrent_misses_make_one_upstream_request():
    # 200 clients ask for a cold key whose origin takes 300 ms: one fetch, the rest wait for
    # it (on both workers) and are answered from the cache
    p = target("j", cc="max-age=60", ms="300")
    results = [None] * 200

    def client(i):
        results[i] = get(p)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r is not None and r.status == 200 for r in results), results
    assert S.up.server.cache_served[p] == 1
    assert {r.json()["n"] for r in results} == {1}
    xc = sorted(r.headers["x-cache"] for r in results)
    assert xc.count("MISS") == 1 and xc.count("HIT") == 199, xc
    assert S.agent.stats()["cache"]["coalesced"] >= 1


def test_stale_if_error_serves_the_stale_entry_when_the_upstream_is_down():
    # the upstream in its own process, so that killing it also ends its kept-alive
    # connections to the agent (an in-process server keeps serving those)
    port = harness.free_port()
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, os.path.join(here, "upstream.py"), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        harness.wait_until(lambda: harness.http("GET", f"http://127.0.0.1:{port}/pid").status == 200,
                           10, "test upstream", ignore=(OSError,))
        with agent_fixture.Agent(port, "--cache-bytes", "1000000",
                                 "--connect-timeout-ms", "300").start() as a:
            sie = target("h", cc="max-age=1,stale-if-error=60")
            plain = target("i", cc="max-age=1")
            for p in (sie, plain):
                assert a.get(p).headers["x-cache"] == "MISS"
            proc.kill()
            proc.wait(timeout=10)
            # fresh for a second (HIT); after that the upstream is asked and is gone
            deadline = time.monotonic() + 10
            while True:
                r = a.get(sie)
                if r.headers.get("x-cache") != "HIT" or time.monotonic() > deadline:
                    break
                time.sleep(0.02)  # a poll interval, not a wait for the answer
            assert r.status == 200 and r.headers["x-cache"] == "STALE", (r.status, r.headers)
            assert r.json()["n"] == 1 and int(r.headers["age"]) >= 1
            r = a.get(plain)  # no stale-if-error: the failure shows (RFC 5861 §4)
            assert r.status == 502, (r.status, r.headers)
            assert a.stats()["cache"]["stale"] == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_unsafe_method_through_one_agent_invalidates_the_entry_on_another():
    redis = harness.RedisServer().start()
    try:
        with Agent(redis=redis, service="svc-inv").start() as a, \
                Agent(redis=redis, service="svc-inv").start() as b:
            p = target("k", cc="max-age=60")
            for agent in (a, b):
                assert agent.get(p).headers["x-cache"] == "MISS"
                assert agent.get(p).headers["x-cache"] == "HIT"
            # the subscriber connects in the background: wait until b listens on the channel
            harness.wait_until(lambda: redis.cmd("PUBSUB", "NUMSUB", "sluice:cache:invalidate")[1] >= 2,
                               10, "both agents subscribed")
            assert a.get(p, method="DELETE").status == 200
            harness.wait_until(lambda: b.get(p).headers["x-cache"] == "MISS", 5,
                               "the entry dropped on the second agent")
            assert b.stats()["cache"]["invalidations"] >= 1
    finally:
        redis.stop()


def test_hit_ratio_over_the_last_seconds():
    with Agent().start() as a:
        p = target("l", cc="max-age=60")
        xc = [a.get(p).headers["x-cache"] for _ in range(4)]
        assert xc == ["MISS", "HIT", "HIT", "HIT"]
        # windows count complete seconds only (rate.h): poll until every second of the four
        # lookups has closed (they may straddle a second boundary on a slow machine)
        w = harness.wait_until(
            lambda: (lambda w: w["10s"] == 0.75 and w["60s"] == 0.75 and w)(
                a.stats()["cache"]["hit_ratio_window"]), 5, "the seconds of the lookups closed")
        assert w["10s"] == 0.75 and w["60s"] == 0.75, w
        assert a.stats()["cache"]["hit_ratio"] == 0.75


def test_stale_if_error_answers_an_upstream_503():
    sie = target("m", cc="max-age=1,stale-if-error=60", fail_after="1")
    plain = target("n", cc="max-age=1", fail_after="1")
    for p in (sie, plain):
        assert get(p).headers["x-cache"] == "MISS"
    deadline = time.monotonic() + 10
    while True:  # fresh for a second, then the origin answers 503
        r = get(sie)
        if r.headers.get("x-cache") != "HIT" or time.monotonic() > deadline:
            break
        time.sleep(0.02)  # a poll interval, not a wait for the answer
    assert r.status == 200 and r.headers["x-cache"] == "STALE", (r.status, r.headers)
    assert r.json()["n"] == 1
    r = get(plain)  # no stale-if-error: the origin's 503 goes through
    assert r.status == 503 and r.headers["x-cache"] in ("BYPASS", "MISS"), (r.status, r.headers)


def poll_until_not_hit(path, headers=None, deadline_s=10):
    """GET path until its entry stops being fresh (X-Cache other than HIT)."""
    deadline = time.monotonic() + deadline_s
    while True:
        r = get(path, headers)
        if r.headers.get("x-cache") != "HIT" or time.monotonic() > deadline:
            return r
        time.sleep(0.02)  # a poll interval, not a wait for the answer


def test_no_cache_entry_is_revalidated_with_if_none_match_and_freshened_by_a_304():
    p = target("rv", cc="no-cache", etag="r1")
    r1 = get(p)
    assert r1.headers["x-cache"] == "MISS" and r1.json()["n"] == 1
    before = S.agent.stats()["cache"]["revalidated"]
    r2 = get(p)  # stored, but no-cache: asked upstream with the stored ETag, answered 304
    assert r2.status == 200 and r2.headers["x-cache"] == "REVALIDATED", r2.headers
    assert S.up.server.cache_conditional[p] == '"r1"'
    assert r2.body == r1.body, "the stored body answers after the 304"
    assert r2.headers["etag"] == '"r1"' and r2.headers["content-length"] == str(len(r1.body))
    assert r2.headers["x-origin-revalidated"] == "2", "the 304's fields update the stored ones"
    assert S.agent.stats()["cache"]["revalidated"] == before + 1
    # the client's own If-None-Match is replaced by ours, then checked against the entry
    r3 = get(p, {"If-None-Match": '"r1"'})
    assert r3.status == 304 and r3.headers["x-cache"] == "REVALIDATED" and r3.body == b""
    r4 = get(p, {"If-None-Match": '"other"'})
    assert r4.status == 200 and r4.headers["x-cache"] == "REVALIDATED"
    assert S.up.server.cache_conditional[p] == '"r1"'


def test_a_changed_resource_replaces_the_entry_after_revalidation():
    p = target("rc", cc="max-age=1", etag="c1", changed="1")  # the origin never answers 304
    assert get(p).headers["x-cache"] == "MISS"
    r = poll_until_not_hit(p)
    assert r.status == 200 and r.headers["x-cache"] == "MISS", r.headers
    assert S.up.server.cache_conditional[p] == '"c1"', "an expired entry is revalidated"
    assert r.json()["n"] == 2
    r = get(p)
    assert r.headers["x-cache"] == "HIT" and r.json()["n"] == 2, "the new answer is stored"


def test_stale_while_revalidate_answers_stale_at_once_and_refreshes_in_the_background():
    p = target("swr", cc="max-age=1,stale-while-revalidate=60", etag="s1")
    assert get(p).headers["x-cache"] == "MISS"
    r = poll_until_not_hit(p)
    assert r.status == 200 and r.headers["x-cache"] == "STALE", r.headers
    assert r.json()["n"] == 1 and int(r.headers["age"]) >= 1
    # the background revalidation reaches the origin with the stored ETag; its 304
    # freshens the entry, so the next answers are hits again
    harness.wait_until(lambda: S.up.server.cache_served[p] >= 2, 10, "the background revalidation")
    assert S.up.server.cache_conditional[p] == '"s1"'
    harness.wait_until(lambda: get(p).headers["x-cache"] == "HIT", 10, "the freshened entry")
    c = S.agent.stats()["cache"]
    assert c["revalidated"] >= 1 and c["reval_failed"] == 0, c


def test_chunked_answers_are_stored_and_replayed_with_a_length():
    p = target("ch", cc="max-age=60", chunked="1", size="3000")
    r1 = get(p)
    assert r1.headers["x-cache"] == "MISS" and r1.headers.get("transfer-encoding") == "chunked"
    r2 = get(p)
    assert r2.headers["x-cache"] == "HIT", r2.headers
    assert r2.body == r1.body and r2.headers["content-length"] == str(len(r1.body))
    assert "transfer-encoding" not in r2.headers


def test_only_if_cached_answers_504_when_nothing_usable_is_stored():
    p = target("oic", cc="max-age=60")
    r = get(p, {"Cache-Control": "only-if-cached"})
    assert r.status == 504 and r.headers["content-type"].startswith("application/problem+json")
    assert p not in S.up.server.cache_served
    get(p)
    r = get(p, {"Cache-Control": "only-if-cached"})
    assert r.status == 200 and r.headers["x-cache"] == "HIT"


def test_shared_tier_in_redis_serves_a_second_agent():
    # a separate Redis for the tier, as the docs suggest (allkeys-lru)
    tier = harness.RedisServer().start()
    try:
        tier.cmd("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
        shared = ("--cache-redis", tier.url, "--cache-redis-max-entry-bytes", "4096")
        with Agent(*shared, service="svc-tier").start() as a, \
                Agent(*shared, service="svc-tier").start() as b:
            p = target("tier", cc="max-age=60")
            r1 = a.get(p)
            assert r1.headers["x-cache"] == "MISS"
            # a's write-through is asynchronous: b finds it once it has landed
            harness.wait_until(lambda: tier.cmd("EXISTS", f"sluice:cache:svc-tier:{p}\n") == 1, 5,
                               "the entry written to the shared tier")
            r2 = b.get(p)
            assert r2.headers["x-cache"] == "HIT", r2.headers
            assert r2.body == r1.body and S.up.server.cache_served[p] == 1
            assert b.stats()["cache"]["shared"]["hits"] == 1
            assert b.get(p).headers["x-cache"] == "HIT" and b.stats()["cache"]["shared"]["hits"] == 1, \
                "the second hit is local"
            # Vary: the marker and the variant travel together
            pv = target("tierv", cc="max-age=60", vary="Accept")
            assert a.get(pv, {"Accept": "text/x-a"}).headers["x-cache"] == "MISS"
            harness.wait_until(lambda: tier.cmd("EXISTS", f"sluice:cache:svc-tier:{pv}\n") == 1, 5,
                               "the Vary marker in the shared tier")
            harness.wait_until(lambda: len(tier.cmd("KEYS", f"sluice:cache:svc-tier:/cache?t=tierv{RUN}*")) == 2,
                               5, "the variant in the shared tier")
            r = b.get(pv, {"Accept": "text/x-a"})
            assert r.headers["x-cache"] == "HIT" and r.json()["accept"] == "text/x-a"
            r = b.get(pv, {"Accept": "text/x-b"})  # another variant: not shared yet
            assert r.headers["x-cache"] == "MISS" and r.json()["accept"] == "text/x-b"
            # larger than the tier's bound: stored locally only
            big = target("tierbig", cc="max-age=60", size="4500")
            assert a.get(big).headers["x-cache"] == "MISS" and a.get(big).headers["x-cache"] == "HIT"
            assert a.stats()["cache"]["shared"]["too_big"] >= 1
            assert b.get(big).headers["x-cache"] == "MISS"
            # a purge empties the tier under the prefix too
            r = a.admin("POST", "/v1/cache/purge", {"prefix": "/cache?t=tier"})
            assert r.status == 200 and r.json()["purged_shared"] >= 3, r.json()
            assert tier.cmd("KEYS", "sluice:cache:svc-tier:*") == []
            # the tier going away costs nothing but its hits
            tier.stop()
            p2 = target("tier2", cc="max-age=60")
            assert b.get(p2).headers["x-cache"] == "MISS" and b.get(p2).headers["x-cache"] == "HIT"
    finally:
        tier.stop()


def test_per_route_rules_disable_caching_and_cap_ttls():
    import json
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        rules = os.path.join(d, "rules.json")
        with open(rules, "w") as f:
            json.dump({"rules": [{"path_prefix": "/cache", "ttl_cap_s": 1, "stale_cap_s": 0},
                                 {"path_prefix": "/echo", "cache": False}]}, f)
        with Agent("--cache-rules", rules).start() as a:
            p = target("rule", cc="max-age=600,stale-while-revalidate=600")
            assert [a.get(p).headers["x-cache"] for _ in range(2)] == ["MISS", "HIT"]
            # the cap: fresh for one second, not 600, and never served stale (cap 0)
            deadline = time.monotonic() + 10
            while a.get(p).headers["x-cache"] == "HIT" and time.monotonic() < deadline:
                time.sleep(0.02)  # a poll interval
            r = a.get(p)
            assert r.headers["x-cache"] in ("MISS", "HIT") and r.json()["n"] >= 2
            assert a.stats()["cache"]["stale"] == 0
            r = a.get("/echo/x", {"Cache-Control": "max-age=60"})
            assert r.headers["x-cache"] == "BYPASS"
            cfg = a.admin("GET", "/v1/config").json()["cache"]
            assert cfg["rules"][1] == {"path_prefix": "/echo", "cache": False}, cfg
            assert cfg["rules"][0]["ttl_cap_s"] == 1
        with open(rules, "w") as f:
            json.dump({"rules": [{"path_prefix": "/cache", "ttl_cap_s": -1}]}, f)
        bad = agent_fixture.run_agent(["--upstream", "127.0.0.1:1", "--cache-bytes", "100000",
                                       "--cache-rules", rules, "--admin", "127.0.0.1:0",
                                       "--listen", "127.0.0.1:0"])
        assert bad.returncode == 2 and b"rules[0].ttl_cap_s" in bad.stderr, bad.stderr
