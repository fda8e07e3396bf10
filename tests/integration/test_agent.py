"""Integration tests of sluice-agent (the sidecar) against DESIGN §3, §4.1, §4.6 and issue 3.

Real processes on 127.0.0.1 only: sluice-agent, redis-server, and the test upstream of
upstream.py (in this process, on daemon threads, so a test can see exactly what reached
it; and as a program for --exec). One Redis, one upstream and one agent serve most tests
(setup_module); a test whose flags differ starts its own agent and stops it, asserting
exit code 0 (ASan builds report leaks that way). Nothing waits by sleeping: every wait
polls with a deadline.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import agent_fixture
import harness
from agent_fixture import BIN, retry_exec, run_agent
from harness import (
    LOOPBACK,
    Program,
    RedisServer,
    free_port,
    http,
    http_keepalive,
    wait_until,
)
from upstream import Upstream, chunked_body_parts, pattern_bytes

TEST_TIMEOUT_S = 30
TOKEN = "it-admin-token-" + os.urandom(6).hex()
RUN = os.urandom(3).hex()
PROBLEM_CT = "application/problem+json"
UPSTREAM_PY = Path(__file__).resolve().parent / "upstream.py"
HEADER_TIMEOUT_MS = 300


class S:  # module state, filled by setup_module
    redis = None
    up = None
    agent = None


# --- helpers: raw HTTP/1.1 on a socket ------------------------------------------------


class RawResponse:
    def __init__(self, version, status, reason, headers, body, trailers):
        self.version, self.status, self.reason = version, status, reason
        self.headers = headers  # [(name, value)] as received
        self.body = body
        self.trailers = trailers

    def get(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def names(self):
        return [k.lower() for k, _ in self.headers]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.reason} {self.headers!r} body={self.body[:300]!r}>"


class RawConn:
    """One client TCP connection; write bytes exactly, parse responses strictly."""

    def __init__(self, port, timeout_s=5.0):
        self.sock = socket.create_connection((LOOPBACK, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(262144)
        if not chunk:
            raise EOFError(f"connection closed (unparsed: {self.buf[:200]!r})")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, method="GET"):
        line = self._line().decode("latin-1")
        m = re.match(r"^(HTTP/1\.[01]) (\d{3}) ?(.*)$", line)
        assert m, f"bad status line {line!r}"
        version, status, reason = m.group(1), int(m.group(2)), m.group(3)
        headers = []
        while True:
            h = self._line().decode("latin-1")
            if h == "":
                break
            assert ":" in h and h[0] not in " \t", f"bad header line {h!r}"
            k, v = h.split(":", 1)
            headers.append((k, v.strip()))
        r = RawResponse(version, status, reason, headers, b"", [])
        te = (r.get("Transfer-Encoding") or "").lower()
        if method == "HEAD" or status < 200 or status in (204, 304):
            return r
        if te:
            assert te == "chunked", f"unexpected Transfer-Encoding {te!r}"
            assert r.get("Content-Length") is None, "Content-Length together with chunked"
            body = bytearray()
            while True:
                size_line = self._line()
                size = int(size_line.split(b";", 1)[0], 16)
                if size == 0:
                    break
                body += self._exact(size)
                assert self._exact(2) == b"\r\n", "chunk data not followed by CRLF"
            while True:
                t = self._line().decode("latin-1")
                if t == "":
                    break
                k, v = t.split(":", 1)
                r.trailers.append((k, v.strip()))
            r.body = bytes(body)
        elif r.get("Content-Length") is not None:
            r.body = self._exact(int(r.get("Content-Length")))
        else:  # delimited by the close
            while True:
                try:
                    self._fill()
                except EOFError:
                    break
            r.body, self.buf = self.buf, b""
        return r

    def closed_by_peer(self, timeout_s=3.0):
        """True when the peer closes (FIN or RST) with no further bytes; raises if bytes
        arrive, or if the connection is still open after timeout_s."""
        assert self.buf == b"", f"unread bytes {self.buf[:200]!r}"
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            raise AssertionError(f"connection still open after {timeout_s}s") from None
        assert data == b"", f"bytes after the response: {data[:200]!r}"
        return True


def req(method, path, headers=(), body=None, host="upstream.test", version="HTTP/1.1"):
    """Bytes of one request. headers: [(name, value)]; a bytes body gets Content-Length
    unless a framing header is given."""
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    names = {k.lower() for k, _ in headers}
    for k, v in headers:
        lines.append(f"{k}: {v}")
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def chunked(parts, trailers=(), ext=False):
    out = b""
    for i, p in enumerate(parts):
        out += b"%x%s\r\n%s\r\n" % (len(p), b";ext=v%d" % i if ext else b"", p)
    out += b"0\r\n"
    for k, v in trailers:
        out += f"{k}: {v}\r\n".encode()
    return out + b"\r\n"


def exchange(port, data, method="GET"):
    with RawConn(port) as c:
        c.send(data)
        return c.read_response(method)


def hdrs(echo_doc):
    """The headers the upstream received, as {lower name: [values]}."""
    out = {}
    for k, v in echo_doc["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def ct(resp):
    return (resp.get("Content-Type") if isinstance(resp, RawResponse)
            else resp.headers.get("content-type", "")).split(";")[0].strip().lower()


def assert_problem(resp, status, slug, where=""):
    body = resp.body
    st = resp.status
    assert st == status, f"{where}: expected {status} {slug}, got {st}: {body[:400]!r}"
    assert ct(resp) == PROBLEM_CT, f"{where}: content-type {ct(resp)!r}, expected {PROBLEM_CT}"
    doc = json.loads(body)
    assert doc.get("type") == f"urn:sluice:problem:{slug}", f"{where}: type {doc.get('type')!r}"
    assert doc.get("status") == status, f"{where}: status member {doc.get('status')!r}"
    assert isinstance(doc.get("title"), str) and doc["title"], f"{where}: no title in {doc!r}"
    return doc


def parse_traceparent(v):
    m = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", v or "")
    assert m, f"bad traceparent {v!r}"
    return m.group(1), m.group(2), m.group(3)


# --- helpers: agents --------------------------------------------------------------------


class Agent(agent_fixture.Agent):
    """A sluice-agent on free loopback ports (agent_fixture.Agent): `with Agent(...).start()
    as a:` stops it on the way out and, when the block ended cleanly, asserts exit code 0."""

    token = TOKEN
    id_prefix = "it"
    run = RUN
    label_prefix = "agent"


def put_faults(agent, faults):
    r = agent.admin("PUT", "/v1/faults", {"faults": faults})
    assert r.status == 200, f"PUT /v1/faults: {r.status} {r.body[:400]!r}"
    return r.json()


def clear_faults(agent):
    r = agent.admin("DELETE", "/v1/faults")
    assert r.status == 204, f"DELETE /v1/faults: {r.status} {r.body[:300]!r}"


# --- module ------------------------------------------------------------------------------


def setup_module():
    S.redis = RedisServer(name="redis-agent").start()
    S.up = Upstream().start()
    S.agent = Agent(S.up.port, "--trace-sample", "1", "--header-timeout-ms", HEADER_TIMEOUT_MS,
                    "--upstream-timeout-ms", 5000, "--service", "it-shortener",
                    redis=S.redis, label="agent-main").start()


def teardown_module():
    try:
        if S.agent is not None:
            S.agent.stop_ok()
    finally:
        if S.up is not None:
            S.up.stop()
        if S.redis is not None:
            S.redis.stop()


# --- command line ---------------------------------------------------------------------------


def test_help_version_and_bad_flags_exit_codes():
    cp = run_agent(["--help"])
    out = cp.stdout.decode()
    assert cp.returncode == 0, f"--help exited {cp.returncode}"
    for flag in ("--upstream", "--listen", "--admin", "--admin-token", "--exec", "--agent-check",
                 "--trace-sample", "--redis", "--workers"):
        assert flag in out, f"--help does not mention {flag}:\n{out}"
    cp = run_agent(["--version"])
    assert cp.returncode == 0, f"--version exited {cp.returncode}"
    assert re.fullmatch(r"sluice-agent \d+\.\d+\.\d+\S*\n", cp.stdout.decode()), cp.stdout

    up = f"{LOOPBACK}:{free_port()}"
    bad = [
        (["--bogus-flag", "--upstream", up], "--bogus-flag"),
        (["--upstream", up, "--workers", "0"], "--workers"),
        (["--upstream", up, "--workers", "many"], "--workers"),
        (["--upstream", up, "--trace-sample", "1.5"], "--trace-sample"),
        (["--upstream", up, "--trace-sample", "x"], "--trace-sample"),
        (["--upstream", "no-port-here"], "--upstream"),
        (["--upstream", up, "--listen", "127.0.0.1:notaport"], "--listen"),
        (["--upstream", up, "--weight", "101"], "--weight"),
        (["--upstream", up, "--header-timeout-ms", "-5"], "--header-timeout-ms"),
        (["--upstream", up, "--log-level", "loud"], "--log-level"),
        ([], "--upstream"),
    ]
    for args, flag in bad:
        a = ["--listen", f"{LOOPBACK}:{free_port()}", "--admin", f"{LOOPBACK}:{free_port()}"]
        if args and args[0] == "--upstream" and "--listen" in args:
            a = ["--admin", f"{LOOPBACK}:{free_port()}"]
        cp = run_agent(a + args)
        err = cp.stderr.decode("utf-8", "replace")
        assert cp.returncode == 2, f"{args}: expected exit 2, got {cp.returncode}: {err}"
        assert flag in err, f"{args}: the message does not name {flag}: {err!r}"


# --- admin API ---------------------------------------------------------------------------


def test_admin_healthz_readyz_config_and_stats_shape():
    a = S.agent
    r = a.admin("GET", "/healthz", token=None)
    assert r.status == 200 and r.json() == {"status": "ok"}, r
    r = a.admin("GET", "/readyz", token=None)
    assert r.status == 200 and r.json().get("state") == "serving", r
    r = a.admin("GET", "/v1/config", token=None)
    assert r.status == 200, r
    cfg = r.json()
    assert cfg["id"] == a.id and cfg["role"] == "sidecar", cfg
    assert cfg["listen"] == f"{LOOPBACK}:{a.port}", cfg
    assert cfg["admin"] == f"{LOOPBACK}:{a.admin_port}", cfg
    assert cfg["upstream"] == f"{LOOPBACK}:{S.up.port}", cfg
    assert cfg["admin_token_set"] is True and TOKEN not in r.text(), "the token must not be shown"
    assert cfg["trace_sample"] == 1 and cfg["workers"] == 2, cfg
    assert cfg["limits"]["header_timeout_ms"] == HEADER_TIMEOUT_MS, cfg
    st = a.stats()
    for k in ("id", "role", "service", "state", "weight", "version", "uptime_s", "in_flight",
              "totals", "connections", "upstream", "routes", "faults", "policy_version"):
        assert k in st, f"/v1/stats lacks {k}: {sorted(st)}"
    assert st["state"] == "serving" and st["weight"] == 100 and st["service"] == "it-shortener", st
    assert set(st["upstream"]) >= {"connects", "reused"}, st["upstream"]
    for k in ("requests", "status", "rate", "latency_ms"):
        assert k in st["totals"], f"totals lacks {k}"
    assert set(st["totals"]["rate"]) == {"1s", "10s", "60s"}, st["totals"]["rate"]
    assert st["exec"] is None, st["exec"]  # no --exec: nothing supervised, nothing to kill
    r = a.admin("POST", "/v1/exec/kill")
    assert r.status == 409 and r.json()["type"].endswith("no-exec-child"), r.body
    r = a.admin("GET", "/v1/nothing-here", token=None)
    assert r.status == 404, r


def test_admin_auth_wrong_or_missing_token_401_and_no_token_403():
    a = S.agent
    mutations = [("POST", "/v1/drain", {"timeout_s": 5}), ("POST", "/v1/undrain", None),
                 ("PUT", "/v1/weight", {"weight": 50}),
                 ("PUT", "/v1/faults", {"faults": [{"kind": "abort", "status": 503, "ttl_s": 5}]}),
                 ("DELETE", "/v1/faults", None)]
    for method, path, body in mutations:
        for tok in (None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"):
            r = a.admin(method, path, body, token=tok)
            assert_problem(r, 401, "unauthorized", f"{method} {path} with {tok!r}")
            assert r.headers.get("www-authenticate", "").startswith("Bearer"), r.headers
    st = a.stats()
    assert st["state"] == "serving" and st["weight"] == 100 and st["faults"]["active"] == 0, st

    with Agent(S.up.port, token=None, workers=1, label="agent-notoken").start() as b:
        for method, path, body in mutations:
            for tok in (None, f"Bearer {TOKEN}"):
                r = b.admin(method, path, body, token=tok)
                assert_problem(r, 403, "mutations-disabled", f"{method} {path} (no --admin-token)")
        for path in ("/healthz", "/readyz", "/v1/stats", "/v1/config", "/v1/faults"):
            r = b.admin("GET", path, token=None)
            assert r.status == 200, f"GET {path} without a token: {r.status}"
        assert b.admin("GET", "/v1/config", token=None).json()["admin_token_set"] is False
        assert b.stats()["state"] == "serving"
        assert b.get("/echo/notoken").status == 200


def test_drain_undrain_weight_and_validation():
    a = S.agent
    try:
        r = a.admin("PUT", "/v1/weight", {"weight": 40})
        assert r.status == 200 and r.json() == {"weight": 40}, r
        assert a.stats()["weight"] == 40
        for body, field in (({"weight": 101}, "weight"), ({"weight": -1}, "weight"),
                            ({"weight": "x"}, "weight"), ({}, "weight"),
                            ({"weight": 5, "extra": 1}, "extra")):
            r = a.admin("PUT", "/v1/weight", body)
            doc = assert_problem(r, 422, "validation-failed", f"weight {body}")
            assert field in [e["field"] for e in doc["errors"]], doc
        r = a.admin("PUT", "/v1/weight", b"{not json", headers={"Content-Type": "application/json"})
        assert_problem(r, 400, "malformed-json", "weight malformed")
        assert a.stats()["weight"] == 40
        for body in ({"timeout_s": 0}, {"timeout_s": 3601}, {"timeout_s": "5"}, {"nope": 1}):
            r = a.admin("POST", "/v1/drain", body)
            assert_problem(r, 422, "validation-failed", f"drain {body}")
        assert a.stats()["state"] == "serving"
        r = a.admin("POST", "/v1/drain", {"timeout_s": 30})
        assert r.status == 202, r
        assert r.json()["state"] in ("draining", "drained"), r.json()
        r = a.admin("GET", "/readyz", token=None)
        assert_problem(r, 503, "not-ready", "readyz while draining")
        assert r.json()["state"] in ("draining", "drained") and r.headers.get("retry-after"), r
        # no traffic: drained within a few control ticks
        wait_until(lambda: a.stats()["state"] == "drained", 3, "state drained")
        assert a.get("/echo/while-drained").status == 200  # a sidecar still proxies
        r = a.admin("POST", "/v1/undrain")
        assert r.status == 200 and r.json() == {"state": "serving"}, r
        assert a.admin("GET", "/readyz", token=None).status == 200
        st = a.stats()
        assert st["state"] == "serving" and st["drain"] is None, st
    finally:
        a.admin("POST", "/v1/undrain")
        a.admin("PUT", "/v1/weight", {"weight": 100})


# --- proxying ----------------------------------------------------------------------------


def test_methods_and_bodies_through_the_agent():
    port = S.agent.port
    with RawConn(port) as c:  # every method on one client connection
        for method, body in (("GET", None), ("HEAD", None), ("POST", b'{"a":1}'),
                             ("PUT", b"put-body"), ("DELETE", None), ("PATCH", b"patch \x00\xff"),
                             ("OPTIONS", None), ("GET", None)):
            path = f"/echo/m/{method.lower()}?q=1&r=%20"
            c.send(req(method, path, body=body))
            r = c.read_response(method)
            assert r.status == 200, f"{method}: {r!r}"
            assert r.version == "HTTP/1.1"
            assert r.get("Connection") is None or r.get("Connection").lower() != "close", r
            if method == "HEAD":
                assert r.body == b"" and int(r.get("Content-Length")) > 0, r
                continue
            doc = r.json()
            assert doc["method"] == method and doc["path"] == path, doc
            assert doc["version"] == "HTTP/1.1"
            assert doc["body_len"] == len(body or b"") and doc["body"] == (body or b"").decode("latin-1"), doc
            assert doc["te"] is None


def test_request_body_content_length_and_chunked_reframed():
    port = S.agent.port
    parts = [b"first-", b"x" * 5000, b"", b"\r\n\x00binary\xff"]
    parts = [p for p in parts if p]  # a zero-size chunk would end the body
    whole = b"".join(parts)
    with RawConn(port) as c:
        body = chunked(parts, trailers=[("X-Trail", "t1")], ext=True)
        c.send(req("POST", "/echo/chunked-in", [("Transfer-Encoding", "chunked")], body))
        r = c.read_response()
        assert r.status == 200, r
        doc = r.json()
        assert doc["te"] == "chunked", f"the upstream got Transfer-Encoding {doc['te']!r}"
        assert "content-length" not in hdrs(doc), hdrs(doc)
        assert doc["body_len"] == len(whole) and doc["body_sha256"] == hashlib.sha256(whole).hexdigest()
        assert doc["trailers"] == [["X-Trail", "t1"]], doc["trailers"]
        # same connection, now Content-Length
        c.send(req("PUT", "/echo/cl-in", body=whole))
        doc = c.read_response().json()
        assert doc["te"] is None and hdrs(doc)["content-length"] == [str(len(whole))], hdrs(doc)
        assert doc["body_sha256"] == hashlib.sha256(whole).hexdigest()
        # a chunked body sent in pieces, with pauses the agent must wait through
        c.send(req("POST", "/echo/chunked-slow", [("Transfer-Encoding", "chunked")]))
        for p in parts:
            c.send(b"%x\r\n%s\r\n" % (len(p), p))
        c.send(b"0\r\n\r\n")
        doc = c.read_response().json()
        assert doc["body_sha256"] == hashlib.sha256(whole).hexdigest() and doc["trailers"] == []


def test_large_bodies_2mib_request_5mib_response():
    port = S.agent.port
    big = os.urandom(2 * 1024 * 1024)
    with RawConn(port, timeout_s=20) as c:
        c.send(req("POST", "/echo/big-in", [("Content-Type", "application/octet-stream")], big))
        r = c.read_response()
        assert r.status == 200, r
        doc = r.json()
        assert doc["body_len"] == len(big) and doc["body_sha256"] == hashlib.sha256(big).hexdigest()
        # 2 MiB again, chunked in 64 KiB pieces
        pieces = [big[i:i + 65536] for i in range(0, len(big), 65536)]
        c.send(req("POST", "/echo/big-chunked", [("Transfer-Encoding", "chunked")], chunked(pieces)))
        doc = c.read_response().json()
        assert doc["body_len"] == len(big) and doc["body_sha256"] == hashlib.sha256(big).hexdigest()
        n = 5 * 1024 * 1024
        c.send(req("GET", f"/big?bytes={n}"))
        r = c.read_response()
        assert r.status == 200 and int(r.get("Content-Length")) == n, r.headers
        assert len(r.body) == n and r.body == pattern_bytes(n), "5 MiB body differs"
        c.send(req("GET", "/echo/after-big"))
        assert c.read_response().json()["path"] == "/echo/after-big"


def test_response_framings_chunked_close_and_no_body():
    port = S.agent.port
    whole = b"".join(chunked_body_parts())
    with RawConn(port) as c:
        c.send(req("GET", "/chunked"))
        r = c.read_response()
        assert r.status == 200 and r.get("Transfer-Encoding", "").lower() == "chunked", r
        assert r.body == whole, "chunked response body differs"
        assert r.trailers == [("X-Checksum", hashlib.sha256(whole).hexdigest())], r.trailers
        for path, status in (("/status/204", 204), ("/status/304", 304), ("/status/404", 404),
                             ("/status/302", 302)):
            c.send(req("GET", path))
            r = c.read_response()
            assert r.status == status, f"{path}: {r!r}"
        c.send(req("HEAD", "/chunked"))
        assert c.read_response("HEAD").status == 200
        c.send(req("GET", "/echo/still-open"))
        assert c.read_response().json()["path"] == "/echo/still-open"
    # an HTTP/1.0 client gets the chunked body de-chunked, ended by the close
    with RawConn(port) as c:
        c.send(req("GET", "/chunked", version="HTTP/1.0"))
        r = c.read_response()
        assert r.status == 200 and r.get("Transfer-Encoding") is None, r
        assert r.get("Connection", "").lower() == "close", r.headers
        assert r.body == whole
    # a body the upstream ends by closing: relayed, then the client connection closes too
    with RawConn(port) as c:
        c.send(req("GET", "/close"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"until-close body " * 100, r
        assert r.get("Connection", "").lower() == "close", r.headers
    # HTTP/1.0 keep-alive request: the upstream sees HTTP/1.1 and Via 1.0
    with RawConn(port) as c:
        c.send(req("GET", "/echo/ten", [("Connection", "keep-alive")], version="HTTP/1.0"))
        r = c.read_response()
        doc = r.json()
        assert doc["version"] == "HTTP/1.1", doc["version"]
        assert hdrs(doc)["via"] == [f"1.0 {S.agent.id}"], hdrs(doc).get("via")


def test_forwarded_fields_hop_by_hop_via_xff_request_id_traceparent():
    a = S.agent
    trace, parent = os.urandom(16).hex(), os.urandom(8).hex()
    headers = [
        ("Connection", "keep-alive, X-Hop-Custom"),
        ("X-Hop-Custom", "secret"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Request-Id", "it-req-0123456789"),
        ("traceparent", f"00-{trace}-{parent}-01"),
        ("tracestate", "vendor=abc"),
        ("X-End-To-End", "kept"),
    ]
    with RawConn(a.port) as c:
        c.send(req("GET", "/echo/hop", headers))
        r = c.read_response()
    assert r.status == 200, r
    doc = r.json()
    h = hdrs(doc)
    for name in ("connection", "x-hop-custom", "keep-alive", "te", "upgrade", "proxy-connection"):
        assert name not in h, f"hop-by-hop {name} forwarded: {h.get(name)}"
    assert h["host"] == ["upstream.test"], h.get("host")
    assert h["x-end-to-end"] == ["kept"] and h["tracestate"] == ["vendor=abc"], h
    assert h["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"], h.get("x-forwarded-for")
    assert h["via"] == [f"1.1 {a.id}"], h.get("via")
    assert h["x-request-id"] == ["it-req-0123456789"], h.get("x-request-id")
    assert len(h["traceparent"]) == 1
    t, p, flags = parse_traceparent(h["traceparent"][0])
    assert t == trace, "the trace id must be kept"
    assert p != parent and p != "0" * 16, "the agent must send its own span id as the parent"
    assert flags == "01"
    assert r.get("X-Request-Id") == "it-req-0123456789", r.headers
    assert f"1.1 {a.id}" in r.all("Via"), r.headers

    # nothing given: a request id and a trace are created; the client sees the same id
    with RawConn(a.port) as c:
        c.send(req("GET", "/echo/new-ids"))
        r = c.read_response()
    h = hdrs(r.json())
    rid = h["x-request-id"][0]
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert r.get("X-Request-Id") == rid, (r.get("X-Request-Id"), rid)
    assert h["x-forwarded-for"] == ["127.0.0.1"], h.get("x-forwarded-for")
    t, p, _ = parse_traceparent(h["traceparent"][0])
    assert t != "0" * 32 and p != "0" * 16
    # an invalid traceparent or request id is replaced, not forwarded
    bad_tp = f"00-{'0' * 32}-{parent}-01"
    with RawConn(a.port) as c:
        c.send(req("GET", "/echo/bad-ids", [("traceparent", bad_tp), ("X-Request-Id", "bad id!")]))
        h = hdrs(c.read_response().json())
    assert h["traceparent"] != [bad_tp] and len(h["traceparent"]) == 1, h["traceparent"]
    assert parse_traceparent(h["traceparent"][0])[0] != "0" * 32
    assert h["x-request-id"] != ["bad id!"], h["x-request-id"]

    # response hop-by-hop fields are not relayed; end-to-end ones are
    with RawConn(a.port) as c:
        c.send(req("GET", "/echo/resp-hop?hop=1"))
        r = c.read_response()
    assert r.status == 200, r
    for name in ("x-up-hop", "keep-alive"):
        assert name not in r.names(), f"response hop-by-hop {name} relayed: {r.headers}"
    assert r.get("X-Up-End-To-End") == "kept", r.headers
    assert r.get("Connection") is None, f"a keep-alive answer with Connection {r.get('Connection')!r}"


def test_pipelined_requests_answered_in_order():
    port = S.agent.port
    with RawConn(port) as c:
        c.send(req("GET", "/echo/p1") + req("POST", "/echo/p2", body=b"two")
               + req("HEAD", "/echo/p3") + req("GET", "/echo/p4"))
        r1, r2 = c.read_response(), c.read_response()
        r3, r4 = c.read_response("HEAD"), c.read_response()
    assert (r1.status, r2.status, r3.status, r4.status) == (200, 200, 200, 200)
    assert r1.json()["path"] == "/echo/p1"
    assert r2.json()["path"] == "/echo/p2" and r2.json()["body"] == "two"
    assert r3.body == b""
    assert r4.json()["path"] == "/echo/p4"


def test_keepalive_reuse_client_side_and_upstream_pool():
    a = S.agent
    before = a.stats()
    up_before = S.up.connections
    with RawConn(a.port) as c:
        for i in range(50):
            c.send(req("GET", f"/echo/ka/{i}"))
            r = c.read_response()
            assert r.status == 200 and r.json()["path"] == f"/echo/ka/{i}", r
    after = a.stats()
    new_up = S.up.connections - up_before
    assert new_up <= 2, f"50 sequential requests opened {new_up} upstream connections"
    d_conn = after["connections"]["accepted"] - before["connections"]["accepted"]
    assert d_conn == 1, f"one client socket, but the agent accepted {d_conn}"
    d_connects = after["upstream"]["connects"] - before["upstream"]["connects"]
    d_reused = after["upstream"]["reused"] - before["upstream"]["reused"]
    assert d_connects + d_reused == 50, (d_connects, d_reused)
    assert d_reused >= 48, f"only {d_reused} of 50 requests reused an upstream connection"
    assert d_connects == new_up, (d_connects, new_up)


def test_expect_100_continue_relayed():
    """The client waits for 100 Continue before the body; the upstream's interim answer is
    relayed (RFC 9110 §10.1.1), then the final one."""
    with RawConn(S.agent.port) as c:
        c.send(req("POST", "/echo/expect", [("Expect", "100-continue"), ("Content-Length", "5")]))
        r = c.read_response()
        assert r.status == 100, f"expected the interim 100 Continue first, got {r!r}"
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200, r
        doc = r.json()
        assert doc["body"] == "hello" and hdrs(doc)["expect"] == ["100-continue"], doc


def test_max_body_bytes_413():
    with Agent(S.up.port, "--max-body-bytes", 1000, workers=1, label="agent-maxbody").start() as a:
        r = exchange(a.port, req("POST", "/echo/small-enough", body=b"x" * 1000))
        assert r.status == 200 and r.json()["body_len"] == 1000, r
        with RawConn(a.port) as c:
            c.send(req("POST", "/echo/too-big-cl", body=b"x" * 1001))
            r = c.read_response()
            doc = json.loads(r.body)
            assert r.status == 413 and doc["status"] == 413, r
            assert r.get("Connection", "").lower() == "close", r.headers
            c.closed_by_peer()
        assert "/echo/too-big-cl" not in S.up.paths(), "a body over the bound was forwarded"
        with RawConn(a.port) as c:
            c.send(req("POST", "/echo/too-big-chunked", [("Transfer-Encoding", "chunked")],
                       chunked([b"y" * 600, b"y" * 600])))
            r = c.read_response()
            assert r.status == 413 and r.get("Connection", "").lower() == "close", r
            c.closed_by_peer()


def test_flags_from_environment_and_flag_wins():
    port, admin = free_port(), free_port()
    env = {"SLUICE_LISTEN": f"{LOOPBACK}:{port}", "SLUICE_ADMIN": f"{LOOPBACK}:{admin}",
           "SLUICE_UPSTREAM": f"{LOOPBACK}:{S.up.port}", "SLUICE_WORKERS": "1",
           "SLUICE_ID": f"it-env-{RUN}", "SLUICE_SERVICE": "from-env",
           "SLUICE_ADMIN_TOKEN": TOKEN}
    p = Program(BIN, ["--service", "from-flag"], env=env, port=admin, label="agent-env")
    retry_exec(p.start, "start agent-env")
    with p:
        p.wait_http_ready("/healthz")
        cfg = http("GET", f"http://{LOOPBACK}:{admin}/v1/config").json()
        assert cfg["id"] == f"it-env-{RUN}" and cfg["service"] == "from-flag", cfg
        assert cfg["listen"] == f"{LOOPBACK}:{port}" and cfg["workers"] == 1, cfg
        assert cfg["admin_token_set"] is True, cfg
        assert http("GET", f"http://{LOOPBACK}:{port}/echo/env").status == 200
        r = http("PUT", f"http://{LOOPBACK}:{admin}/v1/weight", {"Authorization": f"Bearer {TOKEN}"},
                 {"weight": 7})
        assert r.status == 200, r


# --- smuggling and malformed requests -------------------------------------------------------

SMUGGLE_INNER = b"GET /echo/smuggled-inner HTTP/1.1\r\nHost: x\r\n\r\n"


def _smuggling_cases():
    h = "Host: x\r\n"
    big = "X-Big: " + "a" * 17000 + "\r\n"
    many = "".join(f"X-H{i}: v\r\n" for i in range(101))
    return [
        ("cl-cl-same", f"POST /echo/smuggle-1 HTTP/1.1\r\n{h}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
        ("cl-cl-differ", f"POST /echo/smuggle-2 HTTP/1.1\r\n{h}Content-Length: 5\r\nContent-Length: 47\r\n\r\nhello", 400),
        ("cl-list", f"POST /echo/smuggle-3 HTTP/1.1\r\n{h}Content-Length: 5, 5\r\n\r\nhello", 400),
        ("cl-plus", f"POST /echo/smuggle-4 HTTP/1.1\r\n{h}Content-Length: +5\r\n\r\nhello", 400),
        ("cl-te", f"POST /echo/smuggle-5 HTTP/1.1\r\n{h}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
         + SMUGGLE_INNER.decode(), 400),
        ("te-cl", f"POST /echo/smuggle-6 HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nContent-Length: 48\r\n\r\n0\r\n\r\n"
         + SMUGGLE_INNER.decode(), 400),
        ("te-chunked-identity", f"POST /echo/smuggle-7 HTTP/1.1\r\n{h}Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
        ("te-chunked-twice", f"POST /echo/smuggle-8 HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("te-gzip-chunked", f"POST /echo/smuggle-9 HTTP/1.1\r\n{h}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        ("te-in-http10", f"POST /echo/smuggle-10 HTTP/1.0\r\n{h}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("obs-fold", f"GET /echo/smuggle-11 HTTP/1.1\r\n{h}X-Folded: a\r\n b\r\n\r\n", 400),
        ("bare-lf", "GET /echo/smuggle-12 HTTP/1.1\nHost: x\n\n", 400),
        ("bare-cr", "GET /echo/smuggle-13 HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400),
        ("space-before-colon", f"POST /echo/smuggle-14 HTTP/1.1\r\n{h}Content-Length : 5\r\n\r\nhello", 400),
        ("bad-chunk-size", f"POST /echo/smuggle-15 HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
        ("chunk-no-crlf", f"POST /echo/smuggle-16 HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
        ("no-host", "GET /echo/smuggle-17 HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
        ("two-hosts", f"GET /echo/smuggle-18 HTTP/1.1\r\n{h}Host: y\r\n\r\n", 400),
        ("ctl-in-value", f"GET /echo/smuggle-19 HTTP/1.1\r\n{h}X-A: a\x01b\r\n\r\n", 400),
        ("connection-names-cl", f"POST /echo/smuggle-20 HTTP/1.1\r\n{h}Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhello", 400),
        ("headers-too-large", f"GET /echo/smuggle-21 HTTP/1.1\r\n{h}{big}\r\n", 431),
        ("too-many-headers", f"GET /echo/smuggle-22 HTTP/1.1\r\n{h}{many}\r\n", 431),
        ("http-2-0", f"GET /echo/smuggle-23 HTTP/2.0\r\n{h}\r\n", 505),
    ]


def test_smuggling_and_malformed_requests_rejected_and_closed():
    port = S.agent.port
    failures = []
    for name, raw, status in _smuggling_cases():
        try:
            with RawConn(port) as c:
                c.send(raw.encode("latin-1"))
                r = c.read_response()
                assert r.status == status, f"expected {status}, got {r!r}"
                assert r.get("Connection", "").lower() == "close", f"no Connection: close in {r.headers}"
                assert ct(r) == PROBLEM_CT, r.headers
                assert json.loads(r.body)["status"] == status
                c.closed_by_peer()
        except (AssertionError, OSError, EOFError) as e:
            failures.append(f"{name}: {type(e).__name__}: {e}")
    seen = [p for p in S.up.paths() if "smuggl" in p]
    assert not failures, "malformed requests not rejected as specified:\n  " + "\n  ".join(failures)
    assert not seen, f"the upstream received parts of rejected requests: {seen}"
    # the agent still serves normally afterwards
    assert S.agent.get("/echo/after-smuggling").status == 200


def test_smuggling_after_a_good_request_on_the_same_connection():
    """A valid keep-alive request, then an ambiguous one: the first is answered, the second
    gets 400 + close, and nothing of it reaches the upstream."""
    port = S.agent.port
    with RawConn(port) as c:
        c.send(req("GET", "/echo/good-first"))
        assert c.read_response().json()["path"] == "/echo/good-first"
        c.send(b"POST /echo/smuggle-ka HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLE_INNER)
        r = c.read_response()
        assert r.status == 400 and r.get("Connection", "").lower() == "close", r
        c.closed_by_peer()
    assert not [p for p in S.up.paths() if "smuggle" in p], S.up.paths()[-5:]


# --- timeouts and upstream failures ---------------------------------------------------------


def test_slow_client_408_while_others_are_served():
    a = S.agent
    t0 = time.monotonic()
    with RawConn(a.port) as slow:
        slow.send(b"GET /echo/slow-client HTTP/1.1\r\nHost: x\r\nX-Half: ")  # and stall
        served_at = None
        with RawConn(a.port) as other:
            for i in range(5):
                other.send(req("GET", f"/echo/meanwhile/{i}"))
                r = other.read_response()
                assert r.status == 200 and r.json()["path"] == f"/echo/meanwhile/{i}", r
            served_at = time.monotonic()
        r = slow.read_response()
        got_at = time.monotonic()
        assert r.status == 408, r
        assert r.get("Connection", "").lower() == "close", r.headers
        assert json.loads(r.body)["type"] == "urn:sluice:problem:request-timeout", r.body
        slow.closed_by_peer()
    assert got_at - t0 >= HEADER_TIMEOUT_MS / 1000.0, f"408 after only {got_at - t0:.3f}s"
    assert served_at < got_at, "the other client was not served while the slow one stalled"
    assert "/echo/slow-client" not in S.up.paths()


def test_upstream_down_502_problem():
    dead = free_port()  # nothing listens there
    with Agent(dead, workers=1, label="agent-dead-upstream").start() as a:
        for path in ("/echo/x", "/v1/links/abc"):
            r = a.get(path)
            doc = assert_problem(r, 502, "upstream-unavailable", f"GET {path}")
            assert doc.get("instance") == path, doc
            assert r.headers.get("x-request-id") and doc.get("request_id") == r.headers["x-request-id"]
        st = a.stats()
        assert st["totals"]["status"]["5xx"] == 2 and st["totals"]["upstream_errors"] == 2, st["totals"]
        # POST too (nothing was sent, so no retry question arises)
        r = http("POST", a.url("/echo/post"), body=b"x")
        assert_problem(r, 502, "upstream-unavailable", "POST")


def test_upstream_slow_504_and_cut_mid_response():
    with Agent(S.up.port, "--upstream-timeout-ms", 300, workers=1, label="agent-504").start() as a:
        t0 = time.monotonic()
        r = a.get("/slow?ms=1500")
        el = time.monotonic() - t0
        assert_problem(r, 504, "upstream-timeout", "slow upstream")
        assert el >= 0.3, f"504 after {el:.3f}s, before --upstream-timeout-ms 300"
        assert a.get("/slow?ms=10").status == 200  # fast enough still passes
        st = a.stats()
        assert st["totals"]["upstream_timeouts"] == 1, st["totals"]
        # the upstream closes after 1000 of 100000 announced bytes: the client connection is cut
        with RawConn(a.port) as c:
            c.send(req("GET", "/cut"))
            got = b""
            try:
                while True:
                    chunk = c.sock.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except ConnectionResetError:
                pass
            assert got.startswith(b"HTTP/1.1 200"), got[:300]
            assert b"\r\nContent-Length: 100000\r\n" in got, got[:300]
            body = got.split(b"\r\n\r\n", 1)[1]
            assert len(body) < 100000, "a cut response cannot be complete"


# --- drain under load ------------------------------------------------------------------------


def test_drain_under_load_zero_failures():
    with Agent(S.up.port, workers=2, label="agent-drain").start() as a:
        threads_n, per_thread = 6, 50
        done, failures, lock = [0], [], threading.Lock()

        def worker(k):
            try:
                with http_keepalive(a.url("/"), timeout_s=10) as cl:
                    for i in range(per_thread):
                        try:
                            r = cl.request("GET", f"/slow?ms=30&k={k}&i={i}")
                            ok = r.status == 200 and r.json()["path"] == f"/slow?ms=30&k={k}&i={i}"
                            if not ok:
                                with lock:
                                    failures.append(f"{k}/{i}: {r.status} {r.body[:200]!r}")
                        except Exception as e:  # noqa: BLE001
                            with lock:
                                failures.append(f"{k}/{i}: {type(e).__name__}: {e}")
                        with lock:
                            done[0] += 1
            except Exception as e:  # noqa: BLE001
                with lock:
                    failures.append(f"{k}: {type(e).__name__}: {e}")

        ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads_n)]
        for t in ts:
            t.start()
        try:
            wait_until(lambda: done[0] >= 60, 10, "60 requests under load")
            r = a.admin("POST", "/v1/drain", {"timeout_s": 30})
            assert r.status == 202, r
            assert r.json()["state"] == "draining", r.json()
            rz = a.admin("GET", "/readyz", token=None)
            assert rz.status == 503, f"readyz during drain: {rz.status}"
            st = a.stats()
            mid = done[0]
            assert mid < threads_n * per_thread, "load ended before the drain could be observed"
            assert st["state"] == "draining", f"state {st['state']} while load runs"
            assert st["drain"] is not None and st["drain"]["remaining_ms"] > 0, st["drain"]
        finally:
            for t in ts:
                t.join(timeout=20)
        assert not any(t.is_alive() for t in ts), "load threads did not finish"
        assert not failures, f"{len(failures)} failed requests during drain: {failures[:5]}"
        assert done[0] == threads_n * per_thread
        wait_until(lambda: a.stats()["state"] == "drained", 3, "state drained once load stopped")
        assert a.admin("GET", "/readyz", token=None).status == 503
        st = a.stats()
        assert st["totals"]["requests"] == threads_n * per_thread, st["totals"]["requests"]
        assert st["totals"]["status"]["2xx"] == threads_n * per_thread, st["totals"]["status"]
        r = a.admin("POST", "/v1/undrain")
        assert r.status == 200 and r.json()["state"] == "serving", r
        assert a.admin("GET", "/readyz", token=None).status == 200


# --- faults --------------------------------------------------------------------------------


def test_fault_abort_503_then_ttl_revert():
    a = S.agent
    t0 = time.monotonic()
    doc = put_faults(a, [{"kind": "abort", "status": 503, "percent": 100,
                          "path_prefix": "/echo/fault", "ttl_s": 1}])
    try:
        f = doc["faults"]
        assert len(f) == 1 and f[0]["kind"] == "abort" and f[0]["status"] == 503, doc
        assert f[0]["ttl_s"] == 1 and f[0]["expires_in_s"] == 1 and f[0]["path_prefix"] == "/echo/fault", doc
        g = a.admin("GET", "/v1/faults", token=None).json()
        assert [x["kind"] for x in g["faults"]] == ["abort"], g
        assert a.stats()["faults"]["active"] == 1
        before_faulted = a.stats()["totals"]["faulted"]
        for i in range(3):
            r = a.get(f"/echo/fault/{i}")
            pd = assert_problem(r, 503, "fault-injected", f"faulted request {i}")
            assert pd["instance"] == f"/echo/fault/{i}", pd
            assert r.headers.get("retry-after"), r.headers
        assert a.get("/echo/not-faulted").status == 200, "a path outside the prefix was faulted"
        assert not [p for p in S.up.paths() if p.startswith("/echo/fault")], "aborted requests reached the upstream"
        assert a.stats()["totals"]["faulted"] - before_faulted == 3
        # after the TTL the same requests pass again
        r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(a.get("/echo/fault/after")),
                       4, "traffic normal after the fault TTL")
        assert r.json()["path"] == "/echo/fault/after"
        assert time.monotonic() - t0 >= 0.99, "the fault stopped before its ttl_s"
        assert a.admin("GET", "/v1/faults", token=None).json() == {"faults": []}
        wait_until(lambda: a.stats()["faults"]["active"] == 0, 2, "stats faults.active 0")
    finally:
        a.admin("DELETE", "/v1/faults")


def test_fault_delay_reset_blackhole_percent0_and_delete():
    a = S.agent
    put_faults(a, [
        {"kind": "delay", "ms": 300, "path_prefix": "/echo/delay", "ttl_s": 60},
        {"kind": "reset", "path_prefix": "/echo/reset", "ttl_s": 60},
        {"kind": "abort", "status": 500, "percent": 0, "path_prefix": "/echo/p0", "ttl_s": 60},
        {"kind": "blackhole", "path_prefix": "/echo/hole", "ttl_s": 60},
    ])
    try:
        g = a.admin("GET", "/v1/faults", token=None).json()["faults"]
        assert [x["kind"] for x in g] == ["delay", "reset", "abort", "blackhole"], g
        assert g[0]["ms"] == 300 and g[2]["percent"] == 0, g
        for i in range(2):
            t0 = time.monotonic()
            r = a.get(f"/echo/delay/{i}")
            el = time.monotonic() - t0
            assert r.status == 200 and r.json()["path"] == f"/echo/delay/{i}", r
            assert el >= 0.3, f"a 300 ms delay fault took only {el:.3f}s"
        # reset: the connection ends without any response byte
        with RawConn(a.port) as c:
            c.send(req("GET", "/echo/reset/x"))
            try:
                data = c.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            assert data == b"", f"a reset fault answered {data[:200]!r}"
        # percent 0 never fires
        for i in range(30):
            r = a.get(f"/echo/p0/{i}")
            assert r.status == 200, f"percent 0 fired on request {i}: {r.status}"
        # blackhole: no answer (the client gives up)
        with RawConn(a.port, timeout_s=0.5) as c:
            c.send(req("GET", "/echo/hole/x"))
            try:
                data = c.sock.recv(65536)
                raise AssertionError(f"a blackholed request was answered: {data[:200]!r}")
            except socket.timeout:
                pass
        assert not [p for p in S.up.paths() if p.startswith(("/echo/reset", "/echo/hole"))]
    finally:
        clear_faults(a)
    assert a.admin("GET", "/v1/faults", token=None).json() == {"faults": []}
    assert a.get("/echo/reset/after-delete").status == 200
    assert a.get("/echo/delay/after-delete").status == 200


def test_fault_validation_errors_422_name_fields():
    a = S.agent
    cases = [
        ([{"kind": "abort", "status": 503}], ["faults[0].ttl_s"]),
        ([{"kind": "abort", "status": 503, "ttl_s": 0}], ["faults[0].ttl_s"]),
        ([{"kind": "abort", "status": 503, "ttl_s": 3601}], ["faults[0].ttl_s"]),
        ([{"kind": "explode", "ttl_s": 5}], ["faults[0].kind"]),
        ([{"ttl_s": 5}], ["faults[0].kind"]),
        ([{"kind": "delay", "ms": 10, "ttl_s": 5}, {"kind": "abort", "ttl_s": 5}], ["faults[1].status"]),
        ([{"kind": "abort", "status": 200, "ttl_s": 5}], ["faults[0].status"]),
        ([{"kind": "delay", "ttl_s": 5}], ["faults[0].ms"]),
        ([{"kind": "delay", "ms": 10, "percent": 101, "ttl_s": 5}], ["faults[0].percent"]),
        ([{"kind": "reset", "ttl_s": 5, "bogus": 1}], ["faults[0].bogus"]),
        ([{"kind": "reset", "ttl_s": "5"}], ["faults[0].ttl_s"]),
        (["not-an-object"], ["faults[0]"]),
    ]
    for faults, fields in cases:
        r = a.admin("PUT", "/v1/faults", {"faults": faults})
        doc = assert_problem(r, 422, "validation-failed", f"PUT {faults}")
        got = [e["field"] for e in doc.get("errors", [])]
        for f in fields:
            assert f in got, f"{faults}: expected an error naming {f}, got {doc.get('errors')}"
        assert all(isinstance(e.get("message"), str) and e["message"] for e in doc["errors"]), doc
    r = a.admin("PUT", "/v1/faults", {"nope": []})
    doc = assert_problem(r, 422, "validation-failed", "no faults member")
    assert "faults" in [e["field"] for e in doc["errors"]], doc
    r = a.admin("PUT", "/v1/faults", {"faults": [{"kind": "reset", "ttl_s": 5}] * 17})
    assert_problem(r, 422, "validation-failed", "17 faults")
    r = a.admin("PUT", "/v1/faults", b"{not json", headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "malformed-json", "malformed")
    r = a.admin("PUT", "/v1/faults", [1, 2])
    assert_problem(r, 422, "validation-failed", "array body")
    assert a.admin("GET", "/v1/faults", token=None).json() == {"faults": []}, "a rejected PUT changed the set"


# --- registration, --exec, agent-check, SIGTERM ------------------------------------------------


def test_registration_in_redis_and_removed_on_sigterm():
    agent_id = f"it-reg-{RUN}"
    key = "sluice:agent:{" + agent_id + "}"
    a = Agent(S.up.port, "--service", "svc-reg", redis=S.redis, workers=1, agent_id=agent_id,
              label="agent-reg").start()
    try:
        raw = wait_until(lambda: S.redis.cmd("GET", key), 5, f"{key} in Redis")
        rec = json.loads(raw)
        ttl = S.redis.cmd("TTL", key)
        assert 1 <= ttl <= 5, f"TTL of {key} is {ttl}, expected ~5 s"
        assert S.redis.cmd("SISMEMBER", "sluice:agents", agent_id) == 1
        for k in ("id", "role", "service", "listen", "admin", "upstream", "state", "weight",
                  "version", "pid", "started_at"):
            assert k in rec, f"registration lacks {k}: {rec}"
        assert rec["id"] == agent_id and rec["role"] == "sidecar" and rec["service"] == "svc-reg", rec
        assert rec["listen"] == f"{LOOPBACK}:{a.port}" and rec["admin"] == f"{LOOPBACK}:{a.admin_port}", rec
        assert rec["upstream"] == f"{LOOPBACK}:{S.up.port}", rec
        assert rec["state"] == "serving" and rec["weight"] == 100 and rec["pid"] == a.pid, rec
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", rec["started_at"]), rec
        # refreshed: a change of state shows within a couple of seconds
        assert a.admin("POST", "/v1/drain", {"timeout_s": 5}).status == 202
        wait_until(lambda: json.loads(S.redis.cmd("GET", key) or "{}").get("state") in ("draining", "drained"),
                   4, "registration showing the drain")
        wait_until(lambda: S.redis.cmd("TTL", key) >= 4, 3, "TTL refreshed")
        a.stop_ok()
        assert S.redis.cmd("EXISTS", key) == 0, f"{key} left behind after a clean SIGTERM"
        assert S.redis.cmd("SISMEMBER", "sluice:agents", agent_id) == 0, "still in sluice:agents"
    finally:
        a.prog.stop()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _is_our_upstream(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"upstream.py" in f.read()
    except OSError:
        return False


def test_exec_supervision_restart_and_sigterm_forwarded():
    up_port = free_port()
    term_dir = harness._subdir("exec")
    term_file = os.path.join(term_dir, "term.log")
    cmd = f"exec {sys.executable} {UPSTREAM_PY} --port {up_port} --term-file {term_file}"
    a = Agent(up_port, "--exec", cmd, workers=1, label="agent-exec")
    pids = []
    try:
        a.start()

        def child_pid():
            r = a.get("/pid", timeout_s=2)
            return int(r.body) if r.status == 200 else None

        pid1 = wait_until(child_pid, 10, "the --exec child to serve through the agent")
        pids.append(pid1)
        assert pid1 != a.pid and _is_our_upstream(pid1)
        os.kill(pid1, signal.SIGKILL)  # a crash
        pid2 = wait_until(lambda: (lambda p: p if p and p != pid1 else None)(child_pid()), 10,
                          "the child restarted by the agent")
        pids.append(pid2)
        assert not _pid_alive(pid1)
        assert "exec child died" in a.prog.stderr_text(), a.prog.stderr_tail()
        # the crash drills' way: the admin API kills the child; the supervision restarts it
        assert a.admin("POST", "/v1/exec/kill", token=None).status == 401
        wait_until(lambda: a.admin("GET", "/v1/stats").json()["exec"]["pid"] == pid2, 10,
                   "the stats to show the running child")
        r = a.admin("POST", "/v1/exec/kill")
        assert r.status == 202 and r.json()["killed_pid"] == pid2, r.body
        pid3 = wait_until(lambda: (lambda p: p if p and p not in (pid1, pid2) else None)(child_pid()), 10,
                          "the killed child restarted")
        pids.append(pid3)
        assert not _pid_alive(pid2)
        ex = a.admin("GET", "/v1/stats").json()["exec"]
        assert ex["restarts"] == 2 and ex["pid"] == pid3, ex
        pid2 = pid3
        a.stop_ok()
        assert not _pid_alive(pid2), "the --exec child outlived the agent"
        with open(term_file) as f:
            lines = f.read().split()
        assert lines == ["TERM", str(pid2)], f"the child did not get SIGTERM: {lines}"
    finally:
        a.prog.stop()
        for p in pids:  # only processes this test made the agent start, by pid
            if _pid_alive(p) and _is_our_upstream(p):
                os.kill(p, signal.SIGKILL)


def test_agent_check_port_replies():
    check_port = free_port()
    with Agent(S.up.port, "--agent-check", f"{LOOPBACK}:{check_port}", workers=1,
               label="agent-check").start() as a:

        def line():
            with socket.create_connection((LOOPBACK, check_port), timeout=3) as s:
                data = b""
                while True:
                    chunk = s.recv(256)
                    if not chunk:
                        return data.decode()
                    data += chunk

        l1 = line()
        assert l1.endswith("\n") and l1.count("\n") == 1, repr(l1)
        assert "up" in l1.split() and "100%" in l1.split(), repr(l1)
        assert a.admin("PUT", "/v1/weight", {"weight": 35}).status == 200
        l2 = line()
        assert "up" in l2.split() and "35%" in l2.split(), repr(l2)
        assert a.admin("POST", "/v1/drain", {"timeout_s": 5}).status == 202
        assert line() == "drain\n"
        assert a.admin("POST", "/v1/undrain").status == 200
        l3 = line()
        assert "up" in l3.split() and "35%" in l3.split(), repr(l3)


def test_sigterm_waits_for_in_flight_request_refuses_new_and_exits_0():
    a = Agent(S.up.port, "--drain-timeout-s", 10, workers=2, label="agent-sigterm").start()
    result = {}

    def slow():
        try:
            with RawConn(a.port, timeout_s=10) as c:
                c.send(req("GET", "/slow?ms=1500"))
                result["r"] = c.read_response()
        except Exception as e:  # noqa: BLE001
            result["e"] = e

    t = threading.Thread(target=slow, daemon=True)
    try:
        t.start()
        wait_until(lambda: a.stats()["in_flight"] == 1, 5, "the slow request in flight")
        os.kill(a.pid, signal.SIGTERM)

        def refused():
            try:
                with socket.create_connection((LOOPBACK, a.port), timeout=1):
                    return False
            except ConnectionRefusedError:
                return True

        wait_until(refused, 3, "new connections refused after SIGTERM", ignore=())
        assert t.is_alive(), "the slow request ended before the listener closed (test too slow?)"
        rz = http("GET", a.admin_url("/readyz"))
        assert rz.status == 503, f"readyz while stopping: {rz.status}"
        t.join(timeout=10)
        assert "e" not in result, f"the in-flight request failed: {result.get('e')!r}"
        r = result["r"]
        assert r.status == 200 and r.json()["path"] == "/slow?ms=1500", r
        assert r.get("Connection", "").lower() == "close", r.headers
        rc = a.prog.wait_exit(10)
        assert rc == 0, f"exit {rc} after SIGTERM:\n{a.prog.stderr_tail()}"
    finally:
        a.prog.stop()
        t.join(timeout=5)


# --- observability ---------------------------------------------------------------------------


def _promtool_check(text):
    exe = shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None)
    assert exe, ("promtool is not installed (Debian package 'prometheus'; scripts/install-deps"
                 " should install it): cannot lint /metrics")
    cp = subprocess.run([exe, "check", "metrics"], input=text.encode(), capture_output=True, timeout=20)
    assert cp.returncode == 0, (f"promtool check metrics failed ({cp.returncode}):\n"
                                f"{cp.stdout.decode()}{cp.stderr.decode()}")


def _samples(text):
    """{(name, frozenset(labels.items())): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, f"unparsable sample line {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def test_stats_and_metrics_count_exactly_and_pass_promtool():
    with Agent(S.up.port, workers=2, label="agent-count").start() as a:
        with RawConn(a.port) as c:
            for path in ["/echo/a", "/echo/b", "/echo/c", "/echo/d", "/status/302",
                         "/status/404", "/status/404", "/status/503"]:
                c.send(req("GET", path))
                c.read_response()
        r = exchange(a.port, b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                             b"Content-Length: 2\r\n\r\nab")
        assert r.status == 400
        st = a.stats()
        t = st["totals"]
        assert t["requests"] == 9, t
        assert t["status"] == {"1xx": 0, "2xx": 4, "3xx": 1, "4xx": 3, "5xx": 1, "none": 0}, t["status"]
        assert t["rejected"] == 1 and t["upstream_errors"] == 0 and t["faulted"] == 0, t
        routes = {x["route"]: x for x in st["routes"]}
        assert set(routes) == {"/echo/...", "/status/...", "other"}, sorted(routes)
        assert routes["/echo/..."]["requests"] == 4 and routes["/echo/..."]["status"]["2xx"] == 4, routes
        assert routes["other"]["requests"] == 1 and routes["other"]["rejected"] == 1, routes["other"]
        assert routes["/status/..."]["requests"] == 4, routes.get("/status/...")
        assert routes["/status/..."]["status"]["4xx"] == 2 and routes["/status/..."]["status"]["5xx"] == 1
        assert st["in_flight"] == 0
        r = a.admin("GET", "/metrics", token=None)
        assert r.status == 200, r
        ctype = r.headers.get("content-type", "")
        assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
        text = r.text()
        _promtool_check(text)
        s = _samples(text)

        def val(name, **labels):
            return s.get((name, frozenset(labels.items())))

        assert "# TYPE sluice_requests_total counter" in text
        assert val("sluice_requests_total", route="/echo/...", code="2xx") == 4, text[:2000]
        assert val("sluice_requests_total", route="/status/...", code="3xx") == 1
        assert val("sluice_requests_total", route="/status/...", code="4xx") == 2
        assert val("sluice_requests_total", route="/status/...", code="5xx") == 1
        total = sum(v for (n, _), v in s.items() if n == "sluice_requests_total")
        assert total == 9, total
        assert val("sluice_request_duration_seconds_count", route="/echo/...") == 4
        assert val("sluice_request_duration_seconds_bucket", route="/echo/...", le="+Inf") == 4
        assert val("sluice_requests_total", route="other", code="4xx") == 1
        assert val("sluice_agent_state") == 0 and val("sluice_agent_weight") == 100


def test_main_agent_metrics_pass_promtool():
    r = S.agent.admin("GET", "/metrics", token=None)
    assert r.status == 200
    _promtool_check(r.text())
    s = _samples(r.text())
    routes = {dict(l).get("route") for (n, l) in s if n == "sluice_requests_total"}
    assert {"/echo/...", "/status/...", "/chunked", "/big", "other"} <= routes, routes


def _spans_with_trace(trace_id):
    out = []
    for _, fields in S.redis.cmd("XRANGE", "sluice:spans", "-", "+"):
        kv = dict(zip(fields[::2], fields[1::2]))
        doc = json.loads(kv["otlp"])
        for rs in doc["resourceSpans"]:
            res = {x["key"]: x["value"] for x in rs["resource"]["attributes"]}
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    if sp["traceId"] == trace_id:
                        out.append((res, sp))
    return out


def _attrs(span):
    return {x["key"]: next(iter(x["value"].values())) for x in span["attributes"]}


def test_spans_in_redis_with_parent_ids():
    a = S.agent
    trace, parent = os.urandom(16).hex(), os.urandom(8).hex()
    with RawConn(a.port) as c:
        c.send(req("GET", "/echo/traced?x=1", [("traceparent", f"00-{trace}-{parent}-01"),
                                                ("X-Request-Id", "it-span-req")]))
        r = c.read_response()
    assert r.status == 200
    t, agent_span, _ = parse_traceparent(hdrs(r.json())["traceparent"][0])
    assert t == trace
    found = wait_until(lambda: _spans_with_trace(trace), 5, f"a span of trace {trace} in sluice:spans")
    assert len(found) == 1, found
    res, sp = found[0]
    assert sp["parentSpanId"] == parent, sp
    assert sp["spanId"] == agent_span, (sp["spanId"], agent_span)
    assert sp["name"] == "GET /echo/..." and sp["kind"] == 2, sp  # learned route of /echo/traced
    at = _attrs(sp)
    assert at["http.request.method"] == "GET" and at["http.route"] == "/echo/...", at
    assert at["http.response.status_code"] == "200", at
    assert at["sluice.request_id"] == "it-span-req", at
    assert sp["status"].get("code", 0) == 0, sp["status"]
    start, end = int(sp["startTimeUnixNano"]), int(sp["endTimeUnixNano"])
    assert 0 < start <= end and abs(start / 1e9 - time.time()) < 60, (start, end)
    assert res["service.name"] == {"stringValue": "it-shortener"} or res["service.name"] == "it-shortener", res
    assert a.id in json.dumps(res["sluice.agent.id"]), res

    # no traceparent and --trace-sample 1: a root span with a fresh trace
    with RawConn(a.port) as c:
        c.send(req("POST", "/echo/root", body=b"x"))
        h = hdrs(c.read_response().json())
    t2, s2, flags = parse_traceparent(h["traceparent"][0])
    assert flags == "01", "with --trace-sample 1 every new trace is sampled"
    (_, sp2), = wait_until(lambda: _spans_with_trace(t2), 5, "the root span")
    assert "parentSpanId" not in sp2 or sp2["parentSpanId"] in ("", None), sp2
    assert sp2["spanId"] == s2 and sp2["name"] == "POST /echo/..."


def test_5xx_always_traced_even_with_sample_0():
    with Agent(S.up.port, "--trace-sample", "0", redis=S.redis, workers=1,
               label="agent-sample0").start() as a:
        with RawConn(a.port) as c:
            c.send(req("GET", "/echo/unsampled"))
            h_ok = hdrs(c.read_response().json())
            c.send(req("GET", "/status/503"))
            r = c.read_response()
            assert r.status == 503
        t_ok, _, flags = parse_traceparent(h_ok["traceparent"][0])
        assert flags == "00", "--trace-sample 0 must not sample new traces"
        rid = r.get("X-Request-Id")

        def find_503():
            out = []
            for _, fields in S.redis.cmd("XRANGE", "sluice:spans", "-", "+"):
                doc = json.loads(dict(zip(fields[::2], fields[1::2]))["otlp"])
                for rs in doc["resourceSpans"]:
                    for ss in rs["scopeSpans"]:
                        for sp in ss["spans"]:
                            if _attrs(sp).get("sluice.request_id") == rid:
                                out.append(sp)
            return out

        (sp,) = wait_until(find_503, 5, "the 503's span")
        assert sp["status"]["code"] == 2, sp
        assert _attrs(sp)["http.response.status_code"] == "503"
        # the 200 before it was not traced (same worker, shipped in order)
        assert _spans_with_trace(t_ok) == [], "an unsampled 2xx was traced"
