"""Integration tests of sluice-webhook-receiver (samples/webhook-receiver/main.c).

Deliveries are signed here with Python's hmac/hashlib/base64 — an implementation that
shares nothing with shared/webhook.c — and checked first against the Standard Webhooks
reference vector (github.com/standard-webhooks/standard-webhooks,
libraries/go/webhook_test.go, TestWebhookSign). One receiver with two secrets (rotation)
and a --log file serves most tests; tests whose flags differ start their own and assert
exit code 0 on SIGTERM. Everything runs on 127.0.0.1.
"""

import base64
import hashlib
import hmac
import json
import os
import time

from harness import Program, free_port, http, run_program, wait_until

BIN = "sluice-webhook-receiver"
PROBLEM_CT = "application/problem+json"
RUN = os.urandom(3).hex()  # makes webhook ids unique per run

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def sign(secret, msg_id, ts, body):
    key = base64.b64decode(secret[len("whsec_"):], validate=True)
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class S:  # module state, filled by setup_module
    old = new_secret()
    new = new_secret()
    app = None
    log_path = None
    n = 0


def next_id():
    S.n += 1
    return f"msg_{RUN}_{S.n}"


def event(kind, **data):
    return json.dumps({"type": kind, "timestamp": "2026-01-01T00:00:00Z", "data": data},
                      separators=(",", ":")).encode()


def deliver(base, body, secret=None, msg_id=None, ts=None, sig=None, path="/hooks/sluice",
            headers=None):
    """POST a delivery; signs with secret unless sig is given. Returns (response, id)."""
    msg_id = msg_id or next_id()
    ts = int(time.time()) if ts is None else ts
    h = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts),
         "webhook-signature": sig if sig is not None else sign(secret, msg_id, ts, body)}
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    return http("POST", base + path, headers=h, body=body), msg_id


def received(base):
    r = http("GET", base + "/v1/received")
    assert r.status == 200, r
    return r.json()


def find_events(base, msg_id):
    return [e for e in received(base)["events"] if e["id"] == msg_id]


def assert_problem(r, status, slug):
    assert r.status == status, (r.status, r.text())
    assert r.headers["content-type"].startswith(PROBLEM_CT), r.headers
    doc = r.json()
    assert doc["type"] == f"urn:sluice:problem:{slug}", doc
    assert doc["status"] == status
    return doc


def start_receiver(*extra, env=None, label="webhook-receiver"):
    port = free_port()
    p = Program(BIN, ["--listen", f"127.0.0.1:{port}", *extra], env=env, port=port,
                label=label).start()
    try:
        p.wait_http_ready("/healthz", timeout_s=10)
    except BaseException:
        p.stop()
        raise
    return p


def setup_module():
    # the Python signer must agree with the published vector before it judges anything
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIG
    S.app = start_receiver("--secret", S.new, "--secret", S.old, "--log", "deliveries.jsonl",
                           label="receiver-main")
    S.log_path = os.path.join(S.app.dir, "deliveries.jsonl")


def teardown_module():
    if S.app is not None:
        S.app.stop()


# --- tests ----------------------------------------------------------------------------


def test_valid_delivery_is_accepted_and_listed():
    body = event("link.created", code="abc123", url="https://example.com/")
    r, msg_id = deliver(S.app.base_url, body, S.new)
    assert r.status == 204, (r.status, r.text())
    assert r.body == b""
    [ev] = find_events(S.app.base_url, msg_id)
    assert ev["verified"] is True and ev["why"] is None and ev["status"] == 204
    assert ev["type"] == "link.created"
    assert ev["path"] == "/hooks/sluice"
    assert ev["body_bytes"] == len(body)
    assert ev["payload"] == json.loads(body)
    assert ev["request_id"]


def test_any_path_is_a_delivery():
    r, msg_id = deliver(S.app.base_url, event("link.deleted", code="x"), S.new, path="/")
    assert r.status == 204
    r, _ = deliver(S.app.base_url, event("link.deleted", code="y"), S.new, path="/a/b?c=d")
    assert r.status == 204
    assert find_events(S.app.base_url, msg_id)[0]["path"] == "/"


def test_rotation_second_secret_verifies():
    # signed with the old secret only: the receiver holds both
    r, msg_id = deliver(S.app.base_url, event("link.clicked", code="r1"), S.old)
    assert r.status == 204, r.text()
    # a sender rotating signs with both, space-separated, in either order
    body = event("link.clicked", code="r2")
    msg_id, ts = next_id(), int(time.time())
    both = f"{sign(S.old, msg_id, ts, body)} {sign(new_secret(), msg_id, ts, body)}"
    r, _ = deliver(S.app.base_url, body, msg_id=msg_id, ts=ts, sig=both)
    assert r.status == 204, r.text()
    # a secret the receiver does not hold is refused
    r, _ = deliver(S.app.base_url, body, new_secret())
    assert_problem(r, 401, "bad-signature")


def test_tampered_body_is_401():
    body = event("link.created", code="t1")
    msg_id, ts = next_id(), int(time.time())
    sig = sign(S.new, msg_id, ts, body)
    r, _ = deliver(S.app.base_url, body.replace(b"t1", b"t2"), msg_id=msg_id, ts=ts, sig=sig)
    doc = assert_problem(r, 401, "bad-signature")
    assert "signature" in doc["detail"]
    assert r.headers.get("www-authenticate"), r.headers
    [ev] = find_events(S.app.base_url, msg_id)
    assert ev["verified"] is False and ev["why"] == "bad-signature" and ev["status"] == 401
    # the id and the timestamp are signed too
    r, _ = deliver(S.app.base_url, body, msg_id=msg_id + "x", ts=ts, sig=sig)
    assert_problem(r, 401, "bad-signature")
    r, _ = deliver(S.app.base_url, body, msg_id=msg_id, ts=ts + 1, sig=sig)
    assert_problem(r, 401, "bad-signature")
    # the untampered delivery still goes through afterwards
    r, _ = deliver(S.app.base_url, body, msg_id=msg_id, ts=ts, sig=sig)
    assert r.status == 204


def test_stale_and_future_timestamps_are_401():
    now = int(time.time())
    r, msg_id = deliver(S.app.base_url, event("link.created"), S.new, ts=now - 600)
    assert_problem(r, 401, "stale-timestamp")
    [ev] = find_events(S.app.base_url, msg_id)
    assert ev["verified"] is False and ev["why"] == "stale-timestamp"
    assert ev["timestamp"] == str(now - 600)
    r, _ = deliver(S.app.base_url, event("link.created"), S.new, ts=now + 600)
    assert_problem(r, 401, "future-timestamp")
    # inside the 300 s tolerance either way
    r, _ = deliver(S.app.base_url, event("link.created"), S.new, ts=now - 200)
    assert r.status == 204
    r, _ = deliver(S.app.base_url, event("link.created"), S.new, ts=now + 200)
    assert r.status == 204


def test_reference_vector_is_authentic_but_stale():
    # The published example verifies (so the answer is about time, not the signature),
    # but its 2021 timestamp is long outside any tolerance.
    with start_receiver("--secret", SPEC_SECRET, label="receiver-spec") as p:
        r, _ = deliver(p.base_url, SPEC_BODY, msg_id=SPEC_ID, ts=SPEC_TS, sig=SPEC_SIG)
        assert_problem(r, 401, "stale-timestamp")
        r, _ = deliver(p.base_url, SPEC_BODY + b" ", msg_id=SPEC_ID, ts=SPEC_TS, sig=SPEC_SIG)
        assert_problem(r, 401, "bad-signature")


def test_replay_is_409():
    body = event("link.created", code="rp")
    r, msg_id = deliver(S.app.base_url, body, S.new)
    assert r.status == 204
    ts = find_events(S.app.base_url, msg_id)[0]["timestamp"]
    # the same request again
    r, _ = deliver(S.app.base_url, body, msg_id=msg_id, ts=int(ts), sig=sign(S.new, msg_id, ts, body))
    doc = assert_problem(r, 409, "replayed-webhook")
    assert "already accepted" in doc["detail"]
    # a fresh signature and timestamp on the same id is still the same message
    r, _ = deliver(S.app.base_url, body, S.old, msg_id=msg_id, ts=int(ts) + 1)
    assert_problem(r, 409, "replayed-webhook")
    evs = find_events(S.app.base_url, msg_id)
    assert [(e["status"], e["why"], e["verified"]) for e in evs] == [
        (204, None, True), (409, "replayed-webhook", True), (409, "replayed-webhook", True)]


def test_malformed_headers_are_400():
    body = event("link.created")
    cases = [
        {"webhook-id": None},
        {"webhook-timestamp": None},
        {"webhook-signature": None},
        {"webhook-timestamp": "soon"},
        {"webhook-timestamp": "-5"},
        {"webhook-id": "has.dot"},
        {"webhook-signature": "v1"},
        {"webhook-signature": " ".join(["v1,AAAA"] * 17)},
    ]
    for override in cases:
        r, _ = deliver(S.app.base_url, body, S.new, headers=override)
        assert_problem(r, 400, "malformed-webhook")
    # an unknown signature version alone is not malformed, just not verifiable
    r, _ = deliver(S.app.base_url, body, sig="v1a,AAAA")
    assert_problem(r, 401, "bad-signature")
    # a body that is not JSON is still verified (the signature covers bytes)
    r, msg_id = deliver(S.app.base_url, b"\x00\xffnot json", S.new)
    assert r.status == 204
    [ev] = find_events(S.app.base_url, msg_id)
    assert ev["type"] is None and ev["payload"] is None and ev["body_bytes"] == 10


def test_received_and_healthz():
    r = http("GET", S.app.base_url + "/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}
    doc = received(S.app.base_url)
    assert doc["total"] >= len(doc["events"]) > 0
    assert all({"id", "type", "verified", "why", "status", "received_at"} <= set(e) for e in doc["events"])
    r = http("GET", S.app.base_url + "/nope")
    assert_problem(r, 404, "not-found")
    r = http("DELETE", S.app.base_url + "/v1/received")
    assert r.status == 405


def test_log_file_has_a_json_line_per_delivery():
    r, msg_id = deliver(S.app.base_url, event("link.deleted", code="lg"), S.new)
    assert r.status == 204

    def logged():
        with open(S.log_path, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        return [e for e in lines if e["id"] == msg_id]

    [ev] = wait_until(logged, 5, "the delivery in --log")
    assert ev["verified"] is True and ev["type"] == "link.deleted" and ev["status"] == 204
    # every delivery so far is in the file, in order
    with open(S.log_path, encoding="utf-8") as f:
        ids = [json.loads(line)["id"] for line in f]
    assert ids == [e["id"] for e in received(S.app.base_url)["events"]]


def test_status_flag_and_retries_are_not_replays():
    secret = new_secret()
    with start_receiver("--secret", secret, "--status", "500", label="receiver-500") as p:
        body = event("link.created", code="s5")
        r, msg_id = deliver(p.base_url, body, secret)
        assert_problem(r, 500, "configured-status")
        # the sender retries the same id: not accepted before, so not a replay
        r, _ = deliver(p.base_url, body, secret, msg_id=msg_id)
        assert r.status == 500
        assert [e["status"] for e in find_events(p.base_url, msg_id)] == [500, 500]
        # invalid deliveries are still refused first
        r, _ = deliver(p.base_url, body, new_secret())
        assert_problem(r, 401, "bad-signature")
    with start_receiver("--secret", secret, "--status", "410", label="receiver-410") as p:
        r, _ = deliver(p.base_url, event("link.created"), secret)
        assert r.status == 410
    with start_receiver("--secret", secret, "--status", "200", label="receiver-200") as p:
        r, _ = deliver(p.base_url, event("link.created"), secret)
        assert r.status == 200 and r.json() == {"received": True}


def test_secrets_from_environment_comma_separated():
    a, b = new_secret(), new_secret()
    with start_receiver(env={"SLUICE_SECRET": f"{a},{b}"}, label="receiver-env") as p:
        for secret in (a, b):
            r, _ = deliver(p.base_url, event("link.created"), secret)
            assert r.status == 204, r.text()
    # --secret on the command line wins over the environment
    with start_receiver("--secret", a, env={"SLUICE_SECRET": b}, label="receiver-env2") as p:
        r, _ = deliver(p.base_url, event("link.created"), b)
        assert_problem(r, 401, "bad-signature")


def test_tolerance_flag():
    secret = new_secret()
    with start_receiver("--secret", secret, "--tolerance-s", "5", label="receiver-tol5") as p:
        r, _ = deliver(p.base_url, event("link.created"), secret, ts=int(time.time()) - 60)
        assert_problem(r, 401, "stale-timestamp")
        r, _ = deliver(p.base_url, event("link.created"), secret)
        assert r.status == 204


def test_bad_configuration_exits_2():
    leaked = "whsec_dGhpcyBpcyBub3QgbG9uZyBlbm91Z2g="  # 21 bytes: too short
    for args in ([], ["--secret", leaked], ["--secret", "nope"], ["--secret", new_secret(), "--status", "99"],
                 ["--secret", new_secret(), "--listen", "nowhere"], ["--bogus"]):
        cp = run_program(BIN, args)
        err = cp.stderr.decode(errors="replace")
        assert cp.returncode == 2, (args, cp.returncode, err)
        assert err.startswith(f"{BIN}: "), err
        assert leaked not in err  # a secret is never echoed
    cp = run_program(BIN, ["--help"])
    assert cp.returncode == 0 and b"--secret" in cp.stdout and b"--status" in cp.stdout
    cp = run_program(BIN, ["--version"])
    assert cp.returncode == 0 and cp.stdout.decode().startswith(f"{BIN} ")


def test_sigterm_exits_0():
    secret = new_secret()
    p = start_receiver("--secret", secret, label="receiver-term")
    r, _ = deliver(p.base_url, event("link.created", code="bye"), secret)  # state to free
    assert r.status == 204
    assert p.stop() == 0, p.stderr_tail()
    assert '"msg":"stopping"' in p.stderr_text()
