"""The async half against real processes and a real Redis (docs/worker.md, docs/queues.md):
the job queue under a worker killed with SIGKILL again and again (every job's effect exactly
once), dead letters after exactly max_attempts, delayed jobs not early, priorities; and the
sample API's webhooks end to end: subscription → link.created → signed delivery verified
by the receiver, receipts, the bulk job polled to completion; the control plane's queue
view matching Redis."""

import json
import os
import signal
import time

import harness
from harness import LOOPBACK, Program, free_port, run_program, wait_until

from agent_fixture import retry_exec, wait_binary

TEST_TIMEOUT_S = 240
RUN = os.urandom(3).hex()


class S:
    redis = None


def setup_module():
    for b in ("sluice-worker", "sluice-shortener", "sluice-webhook-receiver", "sluice-server"):
        wait_binary(b)
    S.redis = harness.RedisServer().start()


def teardown_module():
    if S.redis:
        S.redis.stop()


def worker(*extra, label="worker"):
    p = Program("sluice-worker", ["--redis", S.redis.url, *extra], label=label)
    retry_exec(p.start, "start sluice-worker", name="sluice-worker")
    return p


def enqueue(queue, count, *extra):
    cp = run_program("sluice-worker", ["enqueue", "--redis", S.redis.url, "--queue", queue,
                                       "--count", str(count), *extra], timeout_s=120)
    assert cp.returncode == 0, cp.stderr
    return int(cp.stdout.decode().strip())


def stats(queue):
    h = S.redis.cmd("HGETALL", f"sluice:q:{{{queue}}}:stats")
    return {h[i]: int(h[i + 1]) for i in range(0, len(h), 2)}


def test_10000_jobs_survive_sigkills_with_each_effect_exactly_once():
    q = f"kill-{RUN}"
    assert enqueue(q, 10000, "--id-prefix", "j") == 10000
    p = worker("--test-queue", q, "--concurrency", "4", "--visibility-ms", "1000", label="w-kill")
    kills = 0
    try:
        deadline = time.monotonic() + 180
        while stats(q).get("completed", 0) < 10000 and time.monotonic() < deadline:
            done = stats(q).get("completed", 0)
            # let it make progress, then kill it in the middle of its work
            wait_until(lambda: stats(q).get("completed", 0) >= min(done + 1500, 10000), 60,
                       "progress between kills")
            if stats(q).get("completed", 0) < 10000:
                os.kill(p.pid, signal.SIGKILL)
                p.proc.wait(timeout=10)
                kills += 1
                p = worker("--test-queue", q, "--concurrency", "4", "--visibility-ms", "1000",
                           label=f"w-kill-{kills}")
    finally:
        p.stop()
    assert kills >= 3, kills
    st = stats(q)
    assert st["completed"] == 10000 and st["enqueued"] == 10000, st
    effects = S.redis.cmd("HGETALL", f"sluice:test:effects:{{{q}}}")
    counts = {effects[i]: int(effects[i + 1]) for i in range(0, len(effects), 2)}
    assert len(counts) == 10000 and set(counts.values()) == {1}, \
        (len(counts), {k: v for k, v in counts.items() if v != 1})
    # bounded: what is acknowledged may be trimmed, nothing is pending
    assert S.redis.cmd("XPENDING", f"sluice:q:{{{q}}}:normal", "workers")[0] == 0


def test_failing_job_is_dead_after_exactly_max_attempts():
    q = f"fail-{RUN}"
    enqueue(q, 1, "--payload", "fail", "--id-prefix", "bad", "--max-attempts", "4")
    p = worker("--test-queue", q, "--max-attempts", "4", "--backoff-ms", "20", label="w-fail")
    try:
        wait_until(lambda: S.redis.cmd("XLEN", f"sluice:q:{{{q}}}:dead") == 1, 30, "a dead letter")
    finally:
        p.stop()
    st = stats(q)
    assert st["failed"] == 4 and st["retried"] == 3 and st["dead"] == 1, st
    rec = S.redis.cmd("HGETALL", f"sluice:q:{{{q}}}:job:bad0")
    rec = {rec[i]: rec[i + 1] for i in range(0, len(rec), 2)}
    assert rec["state"] == "dead" and rec["attempts"] == "4", rec


def test_delayed_jobs_wait_and_priorities_are_respected():
    q = f"prio-{RUN}"
    t0 = time.time() * 1000
    enqueue(q, 1, "--delay-ms", "1500", "--id-prefix", "late")
    for lane in ("low", "normal", "high"):
        enqueue(q, 3, "--lane", lane, "--id-prefix", f"{lane}-")
    p = worker("--test-queue", q, "--concurrency", "1", label="w-prio")
    try:
        wait_until(lambda: S.redis.cmd("LLEN", f"sluice:test:order:{{{q}}}") == 10, 20, "all ten jobs")
    finally:
        p.stop()
    order = S.redis.cmd("LRANGE", f"sluice:test:order:{{{q}}}", 0, -1)
    lanes = [x.split("-")[0] for x in order if not x.startswith("late")]
    assert lanes == ["high"] * 3 + ["normal"] * 3 + ["low"] * 3, order
    ran_at = int(S.redis.cmd("HGET", f"sluice:test:at:{{{q}}}", "late0"))
    assert ran_at >= t0 + 1500, (ran_at - t0)


def test_webhooks_end_to_end_and_the_bulk_job():
    secret_port, app_port, cp_port = free_port(), free_port(), free_port()
    app = Program("sluice-shortener", ["--listen", f"{LOOPBACK}:{app_port}", "--redis", S.redis.url],
                  port=app_port, label="async-app").start()
    app.wait_http_ready("/readyz")
    cp = run_program("sluice-shortener", ["keys", "create", "--scopes", "links:read,links:write",
                                          "--redis", S.redis.url])
    key = cp.stdout.decode().splitlines()[0]
    auth = {"Authorization": f"Bearer {key}"}
    base = f"http://{LOOPBACK}:{app_port}"
    r = harness.http("POST", base + "/v1/webhooks", auth,
                     {"url": f"http://{LOOPBACK}:{secret_port}/hook", "events": ["link.created"]})
    assert r.status == 201 and r.json()["secret"].startswith("whsec_"), r.json()
    sub, secret = r.json()["id"], r.json()["secret"]
    assert "secret" not in harness.http("GET", base + f"/v1/webhooks/{sub}", auth).json()
    bad = harness.http("POST", base + "/v1/webhooks", auth, {"url": "ftp://x", "events": ["nope"]})
    assert bad.status == 422 and {e["field"] for e in bad.json()["errors"]} == {"url", "events"}
    recv = Program("sluice-webhook-receiver", ["--listen", f"{LOOPBACK}:{secret_port}", "--secret", secret],
                   port=secret_port, label="async-receiver").start()
    recv.wait_http_ready("/healthz")
    w = worker("--allow", "127.0.0.1", "--concurrency", "2", label="w-hooks")
    try:
        # the worker subscribes in the background: wait until it listens for events
        wait_until(lambda: S.redis.cmd("PUBSUB", "NUMSUB", "sluice:events")[1] >= 1, 10, "the fan-out")
        r = harness.http("POST", base + "/v1/links", dict(auth, **{"Content-Type": "application/json"}),
                         {"url": "https://example.com/async"})
        assert r.status == 201
        code = r.json()["code"]

        def received():
            got = harness.http("GET", f"http://{LOOPBACK}:{secret_port}/v1/received").json()
            return [e for e in got["events"] if code in json.dumps(e)]

        ev = wait_until(received, 15, "the signed delivery at the receiver")[0]
        assert ev["verified"] is True and ev["type"] == "link.created", ev
        receipts = harness.http("GET", base + f"/v1/webhooks/{sub}/deliveries", auth).json()["deliveries"]
        assert receipts and receipts[0]["outcome"] == "delivered" and receipts[0]["status"] in (200, 204)
        # the polling pattern: 202, then /v1/jobs/{id} until completed
        links = [{"url": f"https://example.com/bulk/{i}"} for i in range(25)]
        r = harness.http("POST", base + "/v1/links/bulk", dict(auth, **{"Content-Type": "application/json"}),
                         {"links": links})
        assert r.status == 202 and r.headers["location"].startswith("/v1/jobs/"), r
        job = r.headers["location"]
        done = wait_until(lambda: harness.http("GET", base + job, auth).json().get("state") == "completed"
                          and harness.http("GET", base + job, auth).json(), 30, "the bulk job")
        assert done["result"]["created"] == 25 and done["progress_done"] == 25, done
        other = run_program("sluice-shortener", ["keys", "create", "--scopes", "links:read", "--redis", S.redis.url])
        okey = other.stdout.decode().splitlines()[0]
        assert harness.http("GET", base + job, {"Authorization": f"Bearer {okey}"}).status == 404
    finally:
        w.stop()
        recv.stop()
        app.stop()


def test_control_plane_queue_view_matches_redis():
    q = f"cp-{RUN}"
    enqueue(q, 7, "--id-prefix", "c")
    port = free_port()
    srv = Program("sluice-server", ["--listen", f"{LOOPBACK}:{port}", "--redis", S.redis.url, "--no-auth",
                                    "--poll-ms", "300"], port=port, label="async-cp")
    retry_exec(srv.start, "start sluice-server", name="sluice-server")
    try:
        srv.wait_http_ready("/healthz")
        doc = wait_until(lambda: (lambda r: r.status == 200 and r.json())(
            harness.http("GET", f"http://{LOOPBACK}:{port}/v1/queues/{q}")), 10, "the queue in the view")
        assert doc["length"] == S.redis.cmd("XLEN", f"sluice:q:{{{q}}}:normal") == 7, doc
        assert doc["waiting"] == 7 and doc["counters"]["enqueued"] == stats(q)["enqueued"] == 7, doc
    finally:
        srv.stop()


def test_a_410_turns_the_subscription_off_and_delete_removes_it():
    port, app_port = free_port(), free_port()
    app = Program("sluice-shortener", ["--listen", f"{LOOPBACK}:{app_port}", "--redis", S.redis.url],
                  port=app_port, label="async-app-410").start()
    app.wait_http_ready("/readyz")
    key = run_program("sluice-shortener", ["keys", "create", "--scopes", "links:read,links:write",
                                           "--redis", S.redis.url]).stdout.decode().splitlines()[0]
    auth = {"Authorization": f"Bearer {key}"}
    base = f"http://{LOOPBACK}:{app_port}"
    sub = harness.http("POST", base + "/v1/webhooks", auth,
                       {"url": f"http://{LOOPBACK}:{port}/gone", "events": ["link.created", "link.clicked"]}).json()
    recv = Program("sluice-webhook-receiver", ["--listen", f"{LOOPBACK}:{port}", "--secret", sub["secret"],
                                               "--status", "410"], port=port, label="async-receiver-410").start()
    recv.wait_http_ready("/healthz")
    w = worker("--allow", "127.0.0.1", label="w-410")
    try:
        wait_until(lambda: S.redis.cmd("PUBSUB", "NUMSUB", "sluice:events")[1] >= 1, 10, "the fan-out")
        r = harness.http("POST", base + "/v1/links", dict(auth, **{"Content-Type": "application/json"}),
                         {"url": "https://example.com/gone"})
        assert r.status == 201
        harness.http("GET", base + "/" + r.json()["code"])  # the first click: a link.clicked milestone
        wait_until(lambda: harness.http("GET", base + f"/v1/webhooks/{sub['id']}", auth).json()["active"] is False,
                   15, "the subscription turned off by the receiver's 410")
        receipts = harness.http("GET", base + f"/v1/webhooks/{sub['id']}/deliveries", auth).json()["deliveries"]
        assert receipts[-1]["status"] == 410 and "gone" in receipts[-1]["outcome"], receipts
        assert harness.http("DELETE", base + f"/v1/webhooks/{sub['id']}", auth).status == 204
        assert harness.http("GET", base + f"/v1/webhooks/{sub['id']}", auth).status == 404
        assert harness.http("GET", base + "/v1/webhooks", auth).json()["webhooks"] == []
    finally:
        w.stop()
        recv.stop()
        app.stop()
