"""Integration tests of sluice-shortener against docs/shortener.md (the contract).

One Redis + one shortener serve most tests (setup_module); tests whose flags differ start
their own instances and stop them, asserting exit code 0. Everything runs on 127.0.0.1.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import time
import urllib.parse
from datetime import datetime, timezone

from harness import (
    Program,
    RedisServer,
    free_port,
    http,
    http_keepalive,
    run_program,
    sha256_hex,
    wait_until,
)

TEST_TIMEOUT_S = 75  # the short-lived-token test may wait out the 30 s leeway

BIN = "sluice-shortener"
MAX_BODY = 4096  # the shared instance runs with a small --max-body-bytes
PROBLEM_CT = "application/problem+json"
RUN = os.urandom(3).hex()  # makes aliases unique per run


class S:  # module state, filled by setup_module
    redis = None
    app = None
    base = None
    rw = ro = wo = rw2 = None  # Key tuples
    short_token = None  # access token from an instance with --token-ttl-s 1
    short_token_exp = None
    short_token_rc = None


class Key:
    def __init__(self, key, key_id, stdout):
        self.key, self.id, self.stdout = key, key_id, stdout

    @property
    def bearer(self):
        return {"Authorization": f"Bearer {self.key}"}


# --- helpers --------------------------------------------------------------------------


def start_shortener(redis_url, *extra, env=None, label="shortener", ready_path="/readyz", redis_flag=True):
    port = free_port()
    args = ["--listen", f"127.0.0.1:{port}"]
    if redis_flag:
        args += ["--redis", redis_url]
    p = Program(BIN, args + list(extra), env=env, port=port, label=label).start()
    try:
        p.wait_http_ready(ready_path, timeout_s=10)
    except BaseException:
        p.stop()
        raise
    return p


def mint_key(redis_url, scopes="links:read,links:write", name=None):
    args = ["keys", "create", "--scopes", scopes, "--redis", redis_url]
    if name:
        args += ["--name", name]
    cp = run_program(BIN, args, timeout_s=10)
    out = cp.stdout.decode("utf-8", "replace")
    assert cp.returncode == 0, f"keys create exited {cp.returncode}: {out}\n{cp.stderr.decode(errors='replace')}"
    lines = out.splitlines()
    assert lines, "keys create printed nothing"
    key = lines[0]
    ids = [m.group(1) for m in (re.match(r"^id:\s*(\S+)\s*$", ln) for ln in lines[1:]) if m]
    assert len(ids) == 1, f"expected one 'id: key_...' line in {out!r}"
    return Key(key, ids[0], out)


def revoke_key(redis_url, key_id):
    cp = run_program(BIN, ["keys", "revoke", key_id, "--redis", redis_url], timeout_s=10)
    assert cp.returncode == 0, f"keys revoke exited {cp.returncode}: {cp.stdout!r} {cp.stderr!r}"


def create(body, key=None, base=None, headers=None, raw=None, path="/v1/links"):
    h = dict(key.bearer if key else {})
    if raw is not None and not any(k.lower() == "content-type" for k in (headers or {})):
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    return http("POST", (base or S.base) + path, h, raw if raw is not None else body)


def create_ok(body, key=None, base=None, headers=None):
    r = create(body, key or S.rw, base, headers)
    assert r.status == 201, f"create {body!r}: expected 201, got {r.status} {r.body[:400]!r}"
    return r.json()


def new_url(tag=""):
    return f"https://example.com/{RUN}/{tag}{os.urandom(4).hex()}"


def ct(resp):
    return resp.headers.get("content-type", "").split(";")[0].strip().lower()


def assert_problem(resp, status, slug, path, where=""):
    """The common error contract: problem+json with type/title/status/detail/instance/request_id."""
    st, h, b = resp
    assert st == status, f"{where}: expected {status} {slug}, got {st}: {b[:500]!r}"
    assert ct(resp) == PROBLEM_CT, f"{where}: content-type {h.get('content-type')!r}, expected {PROBLEM_CT}"
    doc = json.loads(b)
    if slug is None:
        assert str(doc.get("type", "")).startswith("urn:sluice:problem:"), f"{where}: type {doc.get('type')!r}"
    else:
        assert doc.get("type") == f"urn:sluice:problem:{slug}", f"{where}: type {doc.get('type')!r} != {slug}"
    assert isinstance(doc.get("title"), str) and doc["title"], f"{where}: title {doc.get('title')!r}"
    assert doc.get("status") == status, f"{where}: status field {doc.get('status')!r}"
    assert isinstance(doc.get("detail"), str) and doc["detail"], f"{where}: detail {doc.get('detail')!r}"
    bare = path.split("?", 1)[0]
    assert doc.get("instance") in (bare, path), f"{where}: instance {doc.get('instance')!r}, expected {bare!r}"
    rid = h.get("x-request-id")
    assert rid, f"{where}: no X-Request-Id header"
    assert doc.get("request_id") == rid, f"{where}: request_id {doc.get('request_id')!r} != X-Request-Id {rid!r}"
    return doc


def bearer_challenge(value):
    """Parse a `Bearer k="v", ...` challenge into (scheme, {param: value})."""
    scheme, _, rest = (value or "").partition(" ")
    params = dict(re.findall(r'([A-Za-z_]+)="([^"]*)"', rest))
    return scheme, params


def assert_scope_challenge(resp, scope):
    """Contract: WWW-Authenticate: Bearer error="insufficient_scope", scope="links:write".
    RFC 6750 section 3 also allows realm / error_description / error_uri."""
    value = resp.headers.get("www-authenticate")
    scheme, params = bearer_challenge(value)
    assert scheme == "Bearer", f"WWW-Authenticate {value!r}"
    assert params.get("error") == "insufficient_scope" and params.get("scope") == scope, f"WWW-Authenticate {value!r}"
    extra = set(params) - {"error", "scope", "realm", "error_description", "error_uri"}
    assert not extra, f"WWW-Authenticate {value!r} has unexpected parameters {extra}"


def assert_errors(doc, expected, where=""):
    """expected: {field: exact message or None (any non-empty message)}; exactly these fields."""
    errs = doc.get("errors")
    assert isinstance(errs, list), f"{where}: errors {errs!r}"
    for e in errs:
        assert isinstance(e, dict) and isinstance(e.get("field"), str), f"{where}: bad entry {e!r}"
        assert isinstance(e.get("message"), str) and e["message"], f"{where}: bad message in {e!r}"
    fields = [e["field"] for e in errs]
    assert sorted(fields) == sorted(expected), f"{where}: error fields {fields!r}, expected {sorted(expected)!r}"
    for e in errs:
        want = expected[e["field"]]
        if want is not None:
            assert e["message"] == want, f"{where}: message for {e['field']!r} is {e['message']!r}, expected {want!r}"


ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def parse_time(s):
    assert isinstance(s, str) and ISO_RE.match(s), f"not an ISO 8601 UTC time: {s!r}"
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def assert_representation(doc, url, base, code=None, ttl_s=None):
    assert set(doc) == {"code", "url", "short_url", "created_at", "expires_at"}, f"fields {sorted(doc)}"
    if code is None:
        assert re.fullmatch(r"[0-9A-Za-z]{7}", doc["code"]), f"code {doc['code']!r} is not 7 base62 characters"
    else:
        assert doc["code"] == code, f"code {doc['code']!r} != {code!r}"
    assert doc["url"] == url
    assert doc["short_url"] == f"{base}/{doc['code']}", f"short_url {doc['short_url']!r}"
    created = parse_time(doc["created_at"])
    now = datetime.now(timezone.utc)
    assert abs((now - created).total_seconds()) < 120, f"created_at {doc['created_at']} far from now"
    if ttl_s is None:
        assert doc["expires_at"] is None, f"expires_at {doc['expires_at']!r}"
    else:
        exp = parse_time(doc["expires_at"])
        assert abs((exp - created).total_seconds() - ttl_s) <= 1.5, f"{doc['created_at']} + {ttl_s}s != {doc['expires_at']}"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(token):
    h, p, s = token.split(".")
    return json.loads(b64u_dec(h)), json.loads(b64u_dec(p)), s


def get_token(key, scope=None, base=None, form_auth=False, grant="client_credentials"):
    form = {"grant_type": grant}
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if form_auth:
        form.update(client_id=key.id, client_secret=key.key)
    else:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{key.id}:{key.key}".encode()).decode()
    if scope is not None:
        form["scope"] = scope
    return http("POST", (base or S.base) + "/v1/oauth/token", headers, urllib.parse.urlencode(form))


def token_ok(key, scope=None, base=None, form_auth=False):
    r = get_token(key, scope, base, form_auth)
    assert r.status == 200, f"token: {r.status} {r.body[:400]!r}"
    return r.json()


def assert_oauth_error(resp, status, error, where):
    assert resp.status == status, f"{where}: expected {status} {error}, got {resp.status} {resp.body[:400]!r}"
    doc = assert_problem(resp, status, None, "/v1/oauth/token", where)
    assert doc.get("error") == error, f"{where}: OAuth error {doc.get('error')!r}, expected {error!r}"
    return doc


def jwt_signing_key(token):
    """The HMAC key behind a server-issued token: app:jwt:secret, raw bytes or hex text."""
    secret = S.redis.cmd("GET", "app:jwt:secret")
    assert secret and re.fullmatch(r"[0-9a-fA-F]+", secret), f"app:jwt:secret is {secret!r}, expected hex"
    h, p, s = token.split(".")
    for k in (bytes.fromhex(secret), secret.encode()):
        if b64u(hmac.new(k, f"{h}.{p}".encode(), hashlib.sha256).digest()) == s:
            return k
    raise AssertionError("token is not HS256-signed with app:jwt:secret (neither raw nor hex form)")


def make_jwt(header, claims, key, digest=hashlib.sha256):
    h = b64u(json.dumps(header, separators=(",", ":")).encode())
    p = b64u(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64u(hmac.new(key, f"{h}.{p}".encode(), digest).digest()) if key is not None else ""
    return f"{h}.{p}.{sig}"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def list_codes(key, base=None, limit=100):
    r = http("GET", (base or S.base) + f"/v1/links?limit={limit}", key.bearer)
    assert r.status == 200, f"list: {r.status} {r.body[:300]!r}"
    return [d["code"] for d in r.json()["links"]]


def keys_containing(redis, code):
    return sorted(k for k in redis.scan_keys("*") if code in k)


def today_utc():
    return datetime.now(timezone.utc).date().isoformat()


# --- module fixture -------------------------------------------------------------------


def setup_module():
    S.redis = RedisServer(name="redis-main").start()
    S.app = start_shortener(S.redis.url, "--max-body-bytes", MAX_BODY, "--access-log", label="shortener-main")
    S.base = S.app.base_url
    S.rw = mint_key(S.redis.url, "links:read,links:write", name="it-rw")
    S.rw2 = mint_key(S.redis.url, "links:read,links:write", name="it-rw2")
    S.ro = mint_key(S.redis.url, "links:read", name="it-ro")
    S.wo = mint_key(S.redis.url, "links:write", name="it-wo")
    # A token that lives 1 s, minted now so that its 30 s leeway runs out while the rest
    # of the suite runs (test_short_lived_token_expires waits for the remainder).
    short = start_shortener(S.redis.url, "--token-ttl-s", "1", label="shortener-ttl1")
    try:
        doc = token_ok(S.rw, base=short.base_url)
        S.short_token = doc
        S.short_token_exp = jwt_parts(doc["access_token"])[1].get("exp")
    finally:
        S.short_token_rc = short.stop()


def teardown_module():
    if S.app is not None:
        S.app.stop()
    if S.redis is not None:
        S.redis.stop()


# --- health ---------------------------------------------------------------------------


def test_healthz_and_readyz():
    for path in ("/healthz", "/readyz"):
        r = http("GET", S.base + path)
        assert r.status == 200, f"{path}: {r.status} {r.body[:200]!r}"
        assert r.headers.get("x-request-id"), f"{path}: no X-Request-Id"
        h = http("HEAD", S.base + path)
        assert h.status == 200 and h.body == b"", f"HEAD {path}: {h.status} {h.body!r}"


# --- POST /v1/links -------------------------------------------------------------------


def test_create_link_201_location_and_representation():
    url = new_url("a/long/path?q=1&r=")
    r = create({"url": url}, S.rw)
    assert r.status == 201, f"{r.status} {r.body[:300]!r}"
    assert ct(r) == "application/json", r.headers.get("content-type")
    doc = r.json()
    assert_representation(doc, url, S.base)
    assert r.headers.get("location") == f"/v1/links/{doc['code']}", f"Location {r.headers.get('location')!r}"
    # two creations of the same URL get two codes
    doc2 = create_ok({"url": url})
    assert doc2["code"] != doc["code"]


def test_create_with_alias():
    alias = f"My_alias-{RUN}"
    url = new_url("alias/")
    r = create({"url": url, "alias": alias}, S.rw)
    assert r.status == 201, f"{r.status} {r.body[:300]!r}"
    assert_representation(r.json(), url, S.base, code=alias)
    assert r.headers.get("location") == f"/v1/links/{alias}"
    g = http("GET", f"{S.base}/{alias}")
    assert g.status == 302 and g.headers.get("location") == url, f"{g.status} {g.headers}"


def test_create_boundaries_accepted():
    # alias of 3 and of 32 characters, a URL of exactly 2048, ttl_s 1 and 31536000
    a3 = "x" + RUN[:2]
    a32 = ("Zz_-" + RUN + "0123456789abcdefghijklmnopqrstuvwxyz")[:32]
    assert len(a3) == 3 and len(a32) == 32
    create_ok({"url": new_url(), "alias": a3})
    create_ok({"url": new_url(), "alias": a32})
    base_url = f"http://example.com/{RUN}/"
    long_url = base_url + "a" * (2048 - len(base_url))
    assert len(long_url) == 2048
    doc = create_ok({"url": long_url})
    assert doc["url"] == long_url
    doc = create_ok({"url": new_url(), "ttl_s": 31536000})
    assert_representation(doc, doc["url"], S.base, ttl_s=31536000)
    # codes are case-sensitive (base62): aliases differing only in case are two links
    up = create_ok({"url": new_url(), "alias": f"Case-{RUN}"})
    low = create_ok({"url": new_url(), "alias": f"case-{RUN}"})
    assert http("GET", f"{S.base}/{up['code']}").headers.get("location") == up["url"]
    assert http("GET", f"{S.base}/{low['code']}").headers.get("location") == low["url"]
    # "v" followed by something other than digits is not reserved
    create_ok({"url": new_url(), "alias": f"v1x{RUN}"})


def test_create_with_ttl_sets_expires_at_and_cache_lifetime():
    doc = create_ok({"url": new_url(), "ttl_s": 3600})
    assert_representation(doc, doc["url"], S.base, ttl_s=3600)
    g = http("GET", f"{S.base}/v1/links/{doc['code']}")
    assert g.status == 200 and g.json() == doc
    assert g.headers.get("cache-control") == "public, max-age=60", g.headers.get("cache-control")
    # a link that expires sooner than 60 s: max-age is the seconds left
    doc = create_ok({"url": new_url(), "ttl_s": 30})
    g = http("GET", f"{S.base}/v1/links/{doc['code']}")
    m = re.fullmatch(r"public, max-age=(\d+)", g.headers.get("cache-control", ""))
    assert g.status == 200 and m, f"{g.status} Cache-Control {g.headers.get('cache-control')!r}"
    assert 25 <= int(m.group(1)) <= 30, f"max-age {m.group(1)} for a link with 30 s left"


def test_alias_taken_409():
    alias = f"taken-{RUN}"
    create_ok({"url": new_url(), "alias": alias})
    assert_problem(create({"url": new_url(), "alias": alias}, S.rw), 409, "alias-taken", "/v1/links", "same owner")
    assert_problem(create({"url": new_url(), "alias": alias}, S.rw2), 409, "alias-taken", "/v1/links", "other owner")


def test_malformed_json_400_with_line_and_column():
    body = b'{"url": "https://example.com/x",\n  oops}'
    doc = assert_problem(create(None, S.rw, raw=body), 400, "malformed-json", "/v1/links")
    d = doc["detail"].lower()
    assert re.search(r"line\D{0,3}2\b", d), f"detail does not give line 2: {doc['detail']!r}"
    assert re.search(r"col(umn)?\D{0,3}\d+", d), f"detail does not give a column: {doc['detail']!r}"
    for raw in (b"", b"{", b'{"url": "https://example.com/x"} trailing', b"\xff\xfe"):
        assert_problem(create(None, S.rw, raw=raw), 400, "malformed-json", "/v1/links", f"body {raw!r}")


def test_non_object_body_422():
    for raw in (b"[1, 2]", b'"https://example.com/x"', b"42", b"null"):
        doc = assert_problem(create(None, S.rw, raw=raw), 422, "validation-failed", "/v1/links", f"body {raw!r}")
        assert len(doc.get("errors") or []) == 1, f"body {raw!r}: errors {doc.get('errors')!r}"
        assert_errors(doc, {"": None}, f"body {raw!r}")


def test_field_errors_422():
    too_long = "https://example.com/" + "a" * (2049 - len("https://example.com/"))
    assert len(too_long) == 2049
    cases = [
        ({}, {"url": None}),
        ({"alias": f"only-{RUN}"}, {"url": None}),
        ({"url": 12345}, {"url": None}),
        ({"url": None}, {"url": None}),
        ({"url": "ftp://example.com/file"}, {"url": "must be an http or https URL"}),
        ({"url": "mailto:someone@example.com"}, {"url": "must be an http or https URL"}),
        ({"url": "example.com/no/scheme"}, {"url": None}),
        ({"url": "https://"}, {"url": None}),
        ({"url": "/relative/path"}, {"url": None}),
        ({"url": too_long}, {"url": None}),
        ({"url": "https://example.com/a b"}, {"url": None}),
        ({"url": "https://example.com/a\tb"}, {"url": None}),
        ({"url": "https://example.com/a\u0001b"}, {"url": None}),
        ({"url": new_url(), "alias": "ab"}, {"alias": None}),
        ({"url": new_url(), "alias": "a" * 33}, {"alias": None}),
        ({"url": new_url(), "alias": "bad alias"}, {"alias": None}),
        ({"url": new_url(), "alias": "bad!alias"}, {"alias": None}),
        ({"url": new_url(), "alias": "bad/alias"}, {"alias": None}),
        ({"url": new_url(), "alias": "caf\u00e9-x"}, {"alias": None}),
        ({"url": new_url(), "alias": 123}, {"alias": None}),
        ({"url": new_url(), "alias": "v2"}, {"alias": None}),
        ({"url": new_url(), "alias": "v12"}, {"alias": None}),
        ({"url": new_url(), "alias": "v2026"}, {"alias": None}),
        ({"url": new_url(), "alias": "healthz"}, {"alias": None}),
        ({"url": new_url(), "alias": "readyz"}, {"alias": None}),
        ({"url": new_url(), "alias": "metrics"}, {"alias": None}),
        ({"url": new_url(), "ttl_s": 0}, {"ttl_s": None}),
        ({"url": new_url(), "ttl_s": -5}, {"ttl_s": None}),
        ({"url": new_url(), "ttl_s": 31536001}, {"ttl_s": None}),
        ({"url": new_url(), "ttl_s": "60"}, {"ttl_s": None}),
        ({"url": new_url(), "ttl_s": 1.5}, {"ttl_s": None}),
        ({"url": new_url(), "ttl_s": True}, {"ttl_s": None}),
        ({"url": new_url(), "owner": "key_x"}, {"owner": "is not a known field"}),
        ({"url": new_url(), "extra": 1}, {"extra": "is not a known field"}),
        ({"url": "ftp://x.example/", "alias": "!!", "ttl_s": 0, "foo": {}},
         {"url": "must be an http or https URL", "alias": None, "ttl_s": None, "foo": "is not a known field"}),
    ]
    for body, expected in cases:
        where = f"body {body!r}"[:120]
        doc = assert_problem(create(body, S.rw), 422, "validation-failed", "/v1/links", where)
        assert_errors(doc, expected, where)


def test_wrong_content_type_415():
    body = json.dumps({"url": new_url()}).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx", None):
        h = dict(S.rw.bearer)
        if ctype:
            h["Content-Type"] = ctype
        r = http("POST", S.base + "/v1/links", h, body)
        assert_problem(r, 415, "unsupported-media-type", "/v1/links", f"Content-Type {ctype!r}")
    # a parameter does not change the media type
    r = create(None, S.rw, raw=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 201, f"application/json; charset=utf-8: {r.status} {r.body[:300]!r}"


def _json_body_of_size(n):
    core = json.dumps({"url": new_url("size/")})
    assert len(core) < n
    return (core[:-1] + " " * (n - len(core)) + "}").encode()


def _raw_request(port, data):
    """Send raw bytes, read until the server closes; returns the raw answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer early and close
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def test_body_over_max_body_bytes_413():
    exact = _json_body_of_size(MAX_BODY)
    assert len(exact) == MAX_BODY
    r = create(None, S.rw, raw=exact)
    assert r.status == 201, f"a body of exactly --max-body-bytes: {r.status} {r.body[:300]!r}"
    over = _json_body_of_size(MAX_BODY + 1)
    assert_problem(create(None, S.rw, raw=over), 413, "payload-too-large", "/v1/links", "max+1")
    big = _json_body_of_size(MAX_BODY * 4)
    assert_problem(create(None, S.rw, raw=big), 413, "payload-too-large", "/v1/links", "4x max")
    # a chunked body (no Content-Length) over the limit is refused too
    chunk = _json_body_of_size(MAX_BODY * 2)
    raw = _raw_request(S.app.port, (
        f"POST /v1/links HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {S.rw.key}\r\n"
        f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        f"{len(chunk):x}\r\n").encode() + chunk + b"\r\n0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 413"), f"chunked body of {len(chunk)} bytes: {raw[:200]!r}"
    # the process is fine afterwards
    assert http("GET", S.base + "/healthz").status == 200


# --- GET /v1/links/{code}, HEAD, redirect ---------------------------------------------


def test_get_link_200_etag_cache_control_and_304():
    doc = create_ok({"url": new_url()})
    path = f"/v1/links/{doc['code']}"
    g = http("GET", S.base + path)
    assert g.status == 200, f"{g.status} {g.body[:300]!r}"
    assert ct(g) == "application/json"
    assert g.json() == doc
    etag = g.headers.get("etag", "")
    assert re.fullmatch(r'"[\x21\x23-\x7e]+"', etag), f"not a strong ETag: {etag!r}"
    assert g.headers.get("cache-control") == "public, max-age=60", g.headers.get("cache-control")
    assert http("GET", S.base + path).headers.get("etag") == etag, "ETag not stable"
    n = http("GET", S.base + path, {"If-None-Match": etag})
    assert n.status == 304, f"If-None-Match: {n.status}"
    assert n.body == b""
    assert n.headers.get("etag") == etag, f"304 ETag {n.headers.get('etag')!r}"
    n = http("GET", S.base + path, {"If-None-Match": f'"nope", {etag}'})
    assert n.status == 304, f"If-None-Match list containing the tag: {n.status}"
    o = http("GET", S.base + path, {"If-None-Match": '"some-other-tag"'})
    assert o.status == 200 and o.json() == doc
    # another link has another tag
    other = create_ok({"url": new_url()})
    assert http("GET", f"{S.base}/v1/links/{other['code']}").headers.get("etag") != etag


def test_head_is_served_wherever_get_is():
    doc = create_ok({"url": new_url()})
    code = doc["code"]
    g = http("GET", f"{S.base}/v1/links/{code}")
    h = http("HEAD", f"{S.base}/v1/links/{code}")
    assert h.status == 200 and h.body == b"", f"HEAD link: {h.status} {h.body!r}"
    assert h.headers.get("etag") == g.headers.get("etag")
    assert h.headers.get("cache-control") == g.headers.get("cache-control")
    h = http("HEAD", f"{S.base}/{code}")
    assert h.status == 302 and h.headers.get("location") == doc["url"], f"HEAD redirect: {h.status} {h.headers}"
    h = http("HEAD", f"{S.base}/v1/links?limit=1", S.rw.bearer)
    assert h.status == 200 and h.body == b"", f"HEAD list: {h.status}"
    h = http("HEAD", f"{S.base}/v1/links/{code}/stats", S.rw.bearer)
    assert h.status == 200 and h.body == b"", f"HEAD stats: {h.status}"
    h = http("HEAD", f"{S.base}/v1/links/nOsUcH0")
    assert h.status == 404 and h.body == b"", f"HEAD unknown: {h.status}"


def test_redirect_302_no_store():
    doc = create_ok({"url": new_url("redir/")})
    r = http("GET", f"{S.base}/{doc['code']}")
    assert r.status == 302, f"{r.status} {r.body[:200]!r}"
    assert r.headers.get("location") == doc["url"]
    assert r.headers.get("cache-control") == "no-store", r.headers.get("cache-control")


def test_unknown_code_404():
    assert_problem(http("GET", S.base + "/v1/links/bad!code"), 404, "link-not-found", "/v1/links/bad!code")
    for path in ("/v1/nothing", "/v1/links/abc1234/nothing", "/a/b/c"):
        assert_problem(http("GET", S.base + path), 404, None, path, f"unknown path {path}")
    assert_problem(http("GET", S.base + "/v1/links/nOsUcH1"), 404, "link-not-found", "/v1/links/nOsUcH1")
    assert_problem(http("GET", S.base + "/nOsUcH1"), 404, "link-not-found", "/nOsUcH1")
    assert_problem(http("GET", S.base + "/v1/links/nOsUcH1/stats", S.rw.bearer), 404, "link-not-found",
                   "/v1/links/nOsUcH1/stats")


def test_expired_link_410():
    doc = create_ok({"url": new_url(), "ttl_s": 1})
    assert_representation(doc, doc["url"], S.base, ttl_s=1)
    code = doc["code"]
    path = f"/v1/links/{code}"
    wait_until(lambda: http("GET", S.base + path).status != 200, 5, f"{code} (ttl_s 1) to stop answering 200")
    assert_problem(http("GET", S.base + path), 410, "link-expired", path)
    assert_problem(http("GET", f"{S.base}/{code}"), 410, "link-expired", f"/{code}")


# --- stats ----------------------------------------------------------------------------


def test_stats_counts_clicks_visitors_and_days():
    doc = create_ok({"url": new_url("stats/")})
    code = doc["code"]
    spath = f"/v1/links/{code}/stats"
    s = http("GET", S.base + spath, S.rw.bearer)
    assert s.status == 200, f"{s.status} {s.body[:300]!r}"
    st = s.json()
    assert st["code"] == code and st["clicks"] == 0 and st["unique_visitors"] == 0, st
    assert sum(st["daily"].values()) == 0, st
    day0 = today_utc()
    with http_keepalive(S.base) as c:
        for ua in ("it-agent/A",) * 3 + ("it-agent/B",) * 2:
            r = c.request("GET", f"/{code}", {"User-Agent": ua})
            assert r.status == 302, r.status
    day1 = today_utc()
    wait_until(lambda: http("GET", S.base + spath, S.rw.bearer).json()["clicks"] >= 5, 5, "5 clicks counted")
    st = http("GET", S.base + spath, S.rw.bearer).json()
    assert set(st) == {"code", "clicks", "unique_visitors", "daily"}, sorted(st)
    assert st["clicks"] == 5, st
    assert st["unique_visitors"] == 2, st
    daily = st["daily"]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in daily), daily
    assert len(daily) <= 31, f"daily holds the last 30 days: {len(daily)} entries"
    if day0 == day1:
        assert daily.get(day0) == 5, f"daily {daily} has no {day0}: 5"
        assert all(v == 0 for d, v in daily.items() if d != day0), daily
    else:  # the clicks straddled midnight UTC
        assert daily.get(day0, 0) + daily.get(day1, 0) == 5, daily


def test_stats_only_for_owner():
    doc = create_ok({"url": new_url()})
    spath = f"/v1/links/{doc['code']}/stats"
    assert_problem(http("GET", S.base + spath, S.rw2.bearer), 403, "forbidden", spath, "other owner")
    assert_problem(http("GET", S.base + spath, S.ro.bearer), 403, "forbidden", spath, "read-only other owner")
    r = http("GET", S.base + spath)
    assert_problem(r, 401, "unauthorized", spath, "no credentials")
    assert r.headers.get("www-authenticate", "").startswith("Bearer"), r.headers


# --- list -----------------------------------------------------------------------------


def _next_link(resp):
    link = resp.headers.get("link")
    assert link, "no Link header"
    m = re.fullmatch(r'<(/v1/links\?[^>]+)>;\s*rel="next"', link)
    assert m, f"Link header {link!r}"
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(m.group(1)).query)
    return m.group(1), q


def test_list_pagination_three_pages():
    owner = mint_key(S.redis.url, name="it-list")
    docs = [create_ok({"url": new_url(f"list{i}/")}, owner) for i in range(5)]
    newest_first = list(reversed(docs))
    r = http("GET", S.base + "/v1/links?limit=2", owner.bearer)
    assert r.status == 200, f"{r.status} {r.body[:300]!r}"
    assert ct(r) == "application/json"
    page = r.json()
    assert set(page) == {"links", "next_cursor"}, sorted(page)
    assert page["links"] == newest_first[0:2], page["links"]
    assert isinstance(page["next_cursor"], str) and page["next_cursor"]
    target, q = _next_link(r)
    assert q.get("cursor") == [page["next_cursor"]] and q.get("limit") == ["2"], q
    r = http("GET", S.base + target, owner.bearer)
    assert r.status == 200
    page = r.json()
    assert page["links"] == newest_first[2:4], page["links"]
    target, q = _next_link(r)
    assert q.get("cursor") == [page["next_cursor"]] and q.get("limit") == ["2"], q
    r = http("GET", S.base + target, owner.bearer)
    assert r.status == 200
    page = r.json()
    assert page["links"] == newest_first[4:5], page["links"]
    assert page["next_cursor"] is None, page
    assert "link" not in r.headers, f"last page has Link {r.headers.get('link')!r}"
    # default limit (20) returns all five; only the caller's links
    r = http("GET", S.base + "/v1/links", owner.bearer)
    assert r.status == 200 and r.json() == {"links": newest_first, "next_cursor": None}, r.body[:500]
    assert "link" not in r.headers
    r = http("GET", S.base + "/v1/links?limit=100", owner.bearer)
    assert r.status == 200 and [d["code"] for d in r.json()["links"]] == [d["code"] for d in newest_first]
    r = http("GET", S.base + "/v1/links?limit=1", owner.bearer)
    assert r.status == 200 and r.json()["links"] == newest_first[:1]


def test_list_bad_limit_or_cursor_400():
    for q in ("limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5"):
        doc = assert_problem(http("GET", f"{S.base}/v1/links?{q}", S.rw.bearer), 400, "invalid-query",
                             f"/v1/links?{q}", q)
        assert_errors(doc, {"limit": None}, q)
    for q in ("cursor=%21%21not-a-cursor%21%21", "cursor=zzzzzzzzzzzzzzzzzzzzzzzz"):
        doc = assert_problem(http("GET", f"{S.base}/v1/links?{q}", S.rw.bearer), 400, "invalid-query",
                             f"/v1/links?{q}", q)
        assert_errors(doc, {"cursor": None}, q)


# --- delete ---------------------------------------------------------------------------


def test_delete_204_then_404_and_statistics_gone():
    owner = mint_key(S.redis.url, name="it-del")
    keep = create_ok({"url": new_url()}, owner)
    doc = create_ok({"url": new_url()}, owner)
    code = doc["code"]
    assert http("GET", f"{S.base}/{code}").status == 302  # a click: statistics exist
    wait_until(lambda: http("GET", f"{S.base}/v1/links/{code}/stats", owner.bearer).json()["clicks"] == 1,
               5, "the click to be counted")
    before = keys_containing(S.redis, code)
    assert len(before) >= 2, f"expected the link and its statistics in Redis, found {before}"
    path = f"/v1/links/{code}"
    d = http("DELETE", S.base + path, owner.bearer)
    assert d.status == 204 and d.body == b"", f"{d.status} {d.body[:300]!r}"
    assert_problem(http("GET", S.base + path), 404, "link-not-found", path, "GET after delete")
    assert_problem(http("GET", f"{S.base}/{code}"), 404, "link-not-found", f"/{code}", "redirect after delete")
    assert_problem(http("DELETE", S.base + path, owner.bearer), 404, "link-not-found", path, "second delete")
    assert keys_containing(S.redis, code) == [], f"left in Redis: {keys_containing(S.redis, code)}"
    assert list_codes(owner) == [keep["code"]]


def test_delete_by_non_owner_403():
    doc = create_ok({"url": new_url()})
    path = f"/v1/links/{doc['code']}"
    assert_problem(http("DELETE", S.base + path, S.rw2.bearer), 403, "forbidden", path)
    assert http("GET", S.base + path).status == 200, "the link must survive"
    assert_problem(http("DELETE", S.base + path, S.ro.bearer), 403, "insufficient-scope", path, "read-only key")
    assert_problem(http("DELETE", S.base + path), 401, "unauthorized", path, "no credentials")
    assert_problem(http("DELETE", S.base + "/v1/links/nOsUcH2", S.rw2.bearer), 404, "link-not-found",
                   "/v1/links/nOsUcH2")
    assert http("GET", S.base + path).status == 200


# --- authentication -------------------------------------------------------------------


def test_auth_missing_credentials_401():
    r = create({"url": new_url()})
    assert_problem(r, 401, "unauthorized", "/v1/links")
    assert r.headers.get("www-authenticate", "").startswith("Bearer"), r.headers.get("www-authenticate")
    r = http("GET", S.base + "/v1/links")
    assert_problem(r, 401, "unauthorized", "/v1/links", "list")
    assert r.headers.get("www-authenticate", "").startswith("Bearer")


def test_auth_bad_key_401():
    bogus = "sk_" + "A" * 40
    for h in ({"Authorization": f"Bearer {bogus}"}, {"X-API-Key": bogus},
              {"Authorization": f"Bearer {S.rw.key}x"}):
        r = create({"url": new_url()}, headers=h)
        assert_problem(r, 401, "invalid-credentials", "/v1/links", repr(h))
        assert r.headers.get("www-authenticate", "").startswith("Bearer"), (h, r.headers.get("www-authenticate"))


def test_auth_x_api_key_header():
    r = create({"url": new_url()}, headers={"X-API-Key": S.rw.key})
    assert r.status == 201, f"{r.status} {r.body[:300]!r}"
    code = r.json()["code"]
    assert code in list_codes(S.rw), "X-API-Key creation is owned by the key"


def test_auth_insufficient_scope_403():
    r = create({"url": new_url()}, S.ro)
    assert_problem(r, 403, "insufficient-scope", "/v1/links")
    assert_scope_challenge(r, "links:write")
    # a links:write-only key may create and delete its own links, not read lists or stats
    doc = create_ok({"url": new_url()}, S.wo)
    r = http("GET", S.base + "/v1/links", S.wo.bearer)
    assert_problem(r, 403, "insufficient-scope", "/v1/links", "list without links:read")
    assert_scope_challenge(r, "links:read")
    spath = f"/v1/links/{doc['code']}/stats"
    assert_problem(http("GET", S.base + spath, S.wo.bearer), 403, "insufficient-scope", spath, "stats")
    d = http("DELETE", f"{S.base}/v1/links/{doc['code']}", S.wo.bearer)
    assert d.status == 204, f"delete own link with links:write: {d.status} {d.body[:200]!r}"


def test_keys_create_prints_key_alone_on_first_line():
    k = mint_key(S.redis.url, "links:read,links:write", name="it-print")
    lines = k.stdout.splitlines()
    assert re.fullmatch(r"sk_\S+", lines[0]), f"line 1 is not the key alone: {lines[0]!r}"
    assert len(lines[0]) >= 3 + 32, f"key {lines[0]!r} is too short for ~238 bits"
    assert re.fullmatch(r"key_\S+", k.id), k.id
    scope_lines = [ln for ln in lines[1:] if ln.startswith("scopes:")]
    assert len(scope_lines) == 1, k.stdout
    assert "links:read" in scope_lines[0] and "links:write" in scope_lines[0], scope_lines
    assert lines[0] not in "\n".join(lines[1:]), "the key is printed more than once"
    k2 = mint_key(S.redis.url, "links:read")
    assert k2.key != k.key and k2.id != k.id
    # only the SHA-256 is stored: the key itself appears nowhere in Redis
    for rk in S.redis.scan_keys("*"):
        assert k.key not in rk, f"key appears in a Redis key name {rk!r}"
        t = S.redis.cmd("TYPE", rk)
        if t == "string":
            vals = [S.redis.cmd("GET", rk) or ""]
        elif t == "hash":
            vals = S.redis.cmd("HGETALL", rk)
        else:
            continue
        assert not any(k.key in (v or "") for v in vals), f"the plain key is stored in {rk!r}"
    assert any(sha256_hex(k.key) in rk or sha256_hex(k.key) in (S.redis.cmd("GET", rk) or "")
               for rk in S.redis.scan_keys("app:keyid:*")), "no app:keyid entry holds SHA-256(key)"
    # the new key works at once
    assert create({"url": new_url()}, k).status == 201


def test_keys_revoke_401_at_once():
    k = mint_key(S.redis.url, name="it-revoke")
    assert create({"url": new_url()}, k).status == 201
    revoke_key(S.redis.url, k.id)
    assert_problem(create({"url": new_url()}, k), 401, "invalid-credentials", "/v1/links", "Bearer")
    assert_problem(create({"url": new_url()}, headers={"X-API-Key": k.key}), 401, "invalid-credentials",
                   "/v1/links", "X-API-Key")


# --- OAuth ----------------------------------------------------------------------------


def test_oauth_token_with_basic_auth():
    r = get_token(S.rw)
    assert r.status == 200, f"{r.status} {r.body[:300]!r}"
    assert ct(r) == "application/json"
    assert r.headers.get("cache-control") == "no-store", r.headers.get("cache-control")
    doc = r.json()
    assert doc["token_type"] == "Bearer" and doc["expires_in"] == 900, doc
    assert sorted(doc["scope"].split(" ")) == ["links:read", "links:write"], doc["scope"]
    header, claims, _ = jwt_parts(doc["access_token"])
    assert header.get("alg") == "HS256", header
    assert claims.get("iss") == "sluice-shortener" and claims.get("sub") == S.rw.id, claims
    assert sorted(claims.get("scope", "").split(" ")) == ["links:read", "links:write"], claims
    for c in ("iat", "nbf", "exp"):
        assert isinstance(claims.get(c), int), f"claim {c}: {claims.get(c)!r}"
    assert claims["exp"] - claims["iat"] == 900, claims
    assert abs(claims["iat"] - time.time()) < 60, claims
    assert isinstance(claims.get("jti"), str) and claims["jti"], claims
    assert jwt_parts(token_ok(S.rw)["access_token"])[1]["jti"] != claims["jti"], "jti repeats"
    jwt_signing_key(doc["access_token"])  # signed with app:jwt:secret


def test_oauth_token_with_form_fields():
    doc = token_ok(S.rw, form_auth=True)
    assert doc["token_type"] == "Bearer" and jwt_parts(doc["access_token"])[1]["sub"] == S.rw.id


def test_oauth_wrong_secret_401_invalid_client():
    bad = Key(S.rw.key + "x", S.rw.id, "")
    assert_oauth_error(get_token(bad), 401, "invalid_client", "Basic, wrong secret")
    assert_oauth_error(get_token(bad, form_auth=True), 401, "invalid_client", "form, wrong secret")
    other = Key(S.rw.key, S.rw2.id, "")
    assert_oauth_error(get_token(other), 401, "invalid_client", "secret of another client")
    unknown = Key(S.rw.key, "key_doesnotexist", "")
    assert_oauth_error(get_token(unknown), 401, "invalid_client", "unknown client_id")


def test_oauth_grant_type_errors_400():
    r = http("POST", S.base + "/v1/oauth/token",
             {"Content-Type": "application/x-www-form-urlencoded",
              "Authorization": "Basic " + base64.b64encode(f"{S.rw.id}:{S.rw.key}".encode()).decode()},
             "grant_type=password&username=a&password=b")
    assert_oauth_error(r, 400, "unsupported_grant_type", "grant_type=password")
    r = http("POST", S.base + "/v1/oauth/token",
             {"Content-Type": "application/x-www-form-urlencoded",
              "Authorization": "Basic " + base64.b64encode(f"{S.rw.id}:{S.rw.key}".encode()).decode()},
             "scope=links%3Aread")
    assert_oauth_error(r, 400, "invalid_request", "no grant_type")


def test_oauth_scope_narrowing():
    doc = token_ok(S.rw, scope="links:read")
    assert doc["scope"] == "links:read", doc
    tok = doc["access_token"]
    assert jwt_parts(tok)[1]["scope"] == "links:read"
    r = create({"url": new_url()}, headers=bearer(tok))
    assert_problem(r, 403, "insufficient-scope", "/v1/links", "read-only token POST")
    assert_scope_challenge(r, "links:write")
    r = http("GET", S.base + "/v1/links?limit=1", bearer(tok))
    assert r.status == 200, f"read-only token list: {r.status} {r.body[:200]!r}"
    # a links:write-only token of the owner may not read the owner's stats
    link = create_ok({"url": new_url()})
    wtok = token_ok(S.rw, scope="links:write")["access_token"]
    spath = f"/v1/links/{link['code']}/stats"
    assert_problem(http("GET", S.base + spath, bearer(wtok)), 403, "insufficient-scope", spath, "write-only token")
    # a token cannot widen the key's scopes; unknown scopes are refused
    assert_oauth_error(get_token(S.ro, scope="links:write"), 400, "invalid_scope", "ro key asks links:write")
    assert_oauth_error(get_token(S.rw, scope="links:admin"), 400, "invalid_scope", "unknown scope")


def test_jwt_works_as_bearer():
    tok = token_ok(S.rw)["access_token"]
    r = create({"url": new_url("jwt/")}, headers=bearer(tok))
    assert r.status == 201, f"{r.status} {r.body[:300]!r}"
    code = r.json()["code"]
    # the token acts as its key: the API key owns the link
    s = http("GET", f"{S.base}/v1/links/{code}/stats", S.rw.bearer)
    assert s.status == 200, f"owner's stats via API key: {s.status}"
    assert code in list_codes(S.rw)
    d = http("DELETE", f"{S.base}/v1/links/{code}", bearer(tok))
    assert d.status == 204, d.status


def _assert_invalid_token(token, where):
    r = create({"url": new_url()}, headers=bearer(token))
    assert_problem(r, 401, "invalid-credentials", "/v1/links", where)
    w = r.headers.get("www-authenticate", "")
    assert w.startswith("Bearer") and 'error="invalid_token"' in w, f"{where}: WWW-Authenticate {w!r}"


def test_jwt_forged_payload_401():
    tok = token_ok(S.ro)["access_token"]  # scope links:read
    h, p, s = tok.split(".")
    claims = json.loads(b64u_dec(p))
    claims["scope"] = "links:read links:write"
    _assert_invalid_token(f"{h}.{b64u(json.dumps(claims).encode())}.{s}", "escalated scope")
    claims = json.loads(b64u_dec(p))
    claims["sub"] = S.rw.id
    _assert_invalid_token(f"{h}.{b64u(json.dumps(claims).encode())}.{s}", "other sub")
    _assert_invalid_token(f"{h}.{p}.{s[:-2]}{'AA' if s[-2:] != 'AA' else 'BB'}", "bad signature")
    _assert_invalid_token(f"{h}.{p}", "two parts")


def test_jwt_alg_none_and_other_algorithms_401():
    tok = token_ok(S.rw)["access_token"]
    _, claims, _ = jwt_parts(tok)
    _assert_invalid_token(make_jwt({"alg": "none", "typ": "JWT"}, claims, None), "alg none, empty signature")
    h, p, s = tok.split(".")
    none_h = b64u(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    _assert_invalid_token(f"{none_h}.{p}.{s}", "alg none, original signature")
    key = jwt_signing_key(tok)
    _assert_invalid_token(make_jwt({"alg": "HS512", "typ": "JWT"}, claims, key, hashlib.sha512), "HS512")
    # sanity: the same claims signed HS256 with the same key are accepted (so the above is
    # rejected for its algorithm, not for something else)
    ok = make_jwt({"alg": "HS256", "typ": "JWT"}, claims, key)
    r = create({"url": new_url()}, headers=bearer(ok))
    assert r.status == 201, f"re-signed HS256 token: {r.status} {r.body[:300]!r}"


def test_jwt_exp_with_30s_leeway():
    key = jwt_signing_key(token_ok(S.rw)["access_token"])
    now = int(time.time())

    def claims(exp):
        return {"iss": "sluice-shortener", "sub": S.rw.id, "scope": "links:read links:write",
                "iat": exp - 900, "nbf": exp - 900, "exp": exp, "jti": os.urandom(8).hex()}

    hdr = {"alg": "HS256", "typ": "JWT"}
    r = create({"url": new_url()}, headers=bearer(make_jwt(hdr, claims(now - 10), key)))
    assert r.status == 201, f"10 s past exp is within the 30 s leeway: {r.status} {r.body[:300]!r}"
    _assert_invalid_token(make_jwt(hdr, claims(now - 60), key), "60 s past exp")


def test_short_lived_token_accepted_within_leeway():
    assert S.short_token_rc == 0, f"--token-ttl-s 1 instance exited {S.short_token_rc}"
    doc = S.short_token
    assert doc["expires_in"] == 1, doc
    claims = jwt_parts(doc["access_token"])[1]
    assert claims["exp"] - claims["iat"] == 1, claims
    if time.time() < S.short_token_exp + 25:  # still well inside the leeway
        r = create({"url": new_url()}, headers=bearer(doc["access_token"]))
        assert r.status == 201, f"token from another instance (shared secret): {r.status} {r.body[:300]!r}"


def test_old_token_survives_key_revocation_until_exp():
    k = mint_key(S.redis.url, name="it-revoke-token")
    tok = token_ok(k)["access_token"]
    revoke_key(S.redis.url, k.id)
    assert_problem(create({"url": new_url()}, k), 401, "invalid-credentials", "/v1/links", "revoked key")
    assert_oauth_error(get_token(k), 401, "invalid_client", "token for a revoked key")
    r = create({"url": new_url()}, headers=bearer(tok))
    assert r.status == 201, f"tokens are stateless: an old token works until exp: {r.status} {r.body[:300]!r}"


# --- idempotency ----------------------------------------------------------------------


def test_idempotency_replay_same_body():
    owner = mint_key(S.redis.url, name="it-idem")
    ikey = f"idem-{RUN}-1"
    body = json.dumps({"url": new_url("idem/")}).encode()
    first = create(None, owner, raw=body, headers={"Idempotency-Key": ikey})
    assert first.status == 201, f"{first.status} {first.body[:300]!r}"
    assert first.headers.get("idempotent-replayed") in (None, "false"), first.headers
    again = create(None, owner, raw=body, headers={"Idempotency-Key": ikey})
    assert again.status == 201, f"replay: {again.status} {again.body[:300]!r}"
    assert again.headers.get("idempotent-replayed") == "true", again.headers
    assert again.headers.get("location") == first.headers.get("location")
    assert again.json() == first.json()
    assert list_codes(owner) == [first.json()["code"]], "the replay created another link"
    # the record, as the key space documents it
    rec_key = f"app:idem:{{{owner.id}}}:{{{ikey}}}"
    raw = S.redis.cmd("GET", rec_key)
    assert raw is not None, f"no record at {rec_key!r}; app:idem:* = {S.redis.scan_keys('app:idem:*')}"
    rec = json.loads(raw)
    assert rec.get("state") == "done" and rec.get("hash") == sha256_hex(body), rec
    assert rec.get("status") == 201 and rec.get("location") == first.headers.get("location"), rec
    ttl = S.redis.cmd("TTL", rec_key)
    assert 86400 - 60 <= ttl <= 86400, f"record TTL {ttl}, expected 24 h"
    # another key with the same body is another request
    other = create(None, owner, raw=body, headers={"Idempotency-Key": ikey + "-b"})
    assert other.status == 201 and other.json()["code"] != first.json()["code"]


def test_idempotency_replays_the_answer_not_the_work():
    owner = mint_key(S.redis.url, name="it-idem2")
    alias = f"idem-alias-{RUN}"
    body = {"url": new_url(), "alias": alias}
    h = {"Idempotency-Key": f"alias-{RUN}"}
    first = create(body, owner, headers=h)
    assert first.status == 201, first.status
    again = create(body, owner, headers=h)
    assert again.status == 201 and again.headers.get("idempotent-replayed") == "true", \
        f"replay of an alias create must replay 201, not run again (409): {again.status}"
    # a 4xx answer is stored and replayed too
    bad = {"url": "ftp://example.com/x"}
    h = {"Idempotency-Key": f"bad-{RUN}"}
    r1 = create(bad, owner, headers=h)
    assert_problem(r1, 422, "validation-failed", "/v1/links", "first")
    r2 = create(bad, owner, headers=h)
    assert r2.status == 422 and r2.headers.get("idempotent-replayed") == "true", (r2.status, r2.headers)
    assert json.loads(r2.body)["errors"] == json.loads(r1.body)["errors"]


def test_idempotency_key_reused_with_other_body_422():
    ikey = f"reuse-{RUN}"
    body = b'{"url":"https://example.com/reuse-' + RUN.encode() + b'"}'
    assert create(None, S.rw, raw=body, headers={"Idempotency-Key": ikey}).status == 201
    other = json.dumps({"url": new_url()}).encode()
    assert_problem(create(None, S.rw, raw=other, headers={"Idempotency-Key": ikey}), 422,
                   "idempotency-key-reused", "/v1/links", "another body")
    # "same body" is the same bytes: equal JSON with other whitespace is another body
    spaced = body.replace(b'"url":', b'"url": ')
    assert json.loads(spaced) == json.loads(body)
    assert_problem(create(None, S.rw, raw=spaced, headers={"Idempotency-Key": ikey}), 422,
                   "idempotency-key-reused", "/v1/links", "same JSON, other bytes")


def test_idempotency_scoped_to_caller():
    ikey = f"shared-{RUN}"
    body = json.dumps({"url": new_url()}).encode()
    a = create(None, S.rw, raw=body, headers={"Idempotency-Key": ikey})
    b = create(None, S.rw2, raw=body, headers={"Idempotency-Key": ikey})
    assert a.status == 201 and b.status == 201, (a.status, b.status)
    assert b.headers.get("idempotent-replayed") in (None, "false"), "another caller's record was replayed"
    assert a.json()["code"] != b.json()["code"]


def test_idempotency_in_flight_409():
    owner = mint_key(S.redis.url, name="it-inflight")
    ikey = f"inflight-{RUN}"
    body = json.dumps({"url": new_url()}).encode()
    rec_key = f"app:idem:{{{owner.id}}}:{{{ikey}}}"
    assert S.redis.cmd("SET", rec_key, json.dumps({"state": "in_flight", "hash": sha256_hex(body)}), "EX", 60) == "OK"
    assert_problem(create(None, owner, raw=body, headers={"Idempotency-Key": ikey}), 409,
                   "idempotency-key-in-flight", "/v1/links")
    assert list_codes(owner) == [], "an in-flight duplicate must not create a link"
    S.redis.cmd("DEL", rec_key)
    r = create(None, owner, raw=body, headers={"Idempotency-Key": ikey})
    assert r.status == 201, f"after the record is gone: {r.status} {r.body[:300]!r}"


def test_idempotency_key_invalid_400():
    for ikey in ("", "k" * 256, "k" * 300, "has space", "tab\there"):
        r = create({"url": new_url()}, S.rw, headers={"Idempotency-Key": ikey})
        assert_problem(r, 400, "invalid-idempotency-key", "/v1/links", f"key of {len(ikey)} chars {ikey[:12]!r}")
    for ikey in ("k", "K" * 255, "!~#$%&'*+-.^_`|" + RUN):
        r = create({"url": new_url()}, S.rw, headers={"Idempotency-Key": ikey})
        assert r.status == 201, f"valid key {ikey[:20]!r} ({len(ikey)}): {r.status} {r.body[:300]!r}"


# --- versions, methods, request ids, logs ---------------------------------------------


def test_v0_answers_like_v1_with_deprecation_headers():
    doc = create_ok({"url": new_url()})
    code = doc["code"]
    v1 = http("GET", f"{S.base}/v1/links/{code}")
    v0 = http("GET", f"{S.base}/v0/links/{code}")
    assert v0.status == 200 and v0.json() == v1.json() == doc, (v0.status, v0.body[:300])
    assert v0.headers.get("etag") == v1.headers.get("etag")
    assert v0.headers.get("deprecation") == "@1767225600", v0.headers.get("deprecation")
    assert v0.headers.get("sunset") == "Tue, 01 Jun 2027 00:00:00 GMT", v0.headers.get("sunset")
    assert v0.headers.get("link") == f'</v1/links/{code}>; rel="successor-version"', v0.headers.get("link")
    assert "deprecation" not in v1.headers and "sunset" not in v1.headers
    r = create({"url": new_url()}, S.rw, path="/v0/links")
    assert r.status == 201 and r.headers.get("deprecation") == "@1767225600", (r.status, r.headers)
    assert r.headers.get("link") == '</v1/links>; rel="successor-version"', r.headers.get("link")
    r = http("GET", f"{S.base}/v0/links/nOsUcH3")
    assert_problem(r, 404, "link-not-found", "/v0/links/nOsUcH3", "v0 unknown")
    assert r.headers.get("deprecation") == "@1767225600"


def test_unknown_api_version_404():
    for path in ("/v2/links", "/v9/links/abc1234", "/v10/links"):
        assert_problem(http("GET", S.base + path, S.rw.bearer), 404, "unknown-api-version", path)
    assert_problem(create({"url": new_url()}, S.rw, path="/v2/links"), 404, "unknown-api-version", "/v2/links")


def _allow(resp):
    return {m.strip().upper() for m in resp.headers.get("allow", "").split(",") if m.strip()}


def test_405_with_allow():
    doc = create_ok({"url": new_url()})
    code = doc["code"]
    cases = [
        ("PUT", "/v1/links", {"GET", "POST"}),
        ("DELETE", "/v1/links", {"GET", "POST"}),
        ("PATCH", f"/v1/links/{code}", {"GET", "DELETE"}),
        ("POST", f"/v1/links/{code}", {"GET", "DELETE"}),
        ("POST", f"/v1/links/{code}/stats", {"GET"}),
        ("GET", "/v1/oauth/token", {"POST"}),
        ("POST", "/healthz", {"GET"}),
        ("DELETE", "/readyz", {"GET"}),
        ("POST", f"/{code}", {"GET"}),
    ]
    for method, path, must in cases:
        r = http(method, S.base + path, S.rw.bearer, b"{}" if method in ("PUT", "PATCH", "POST") else None)
        assert_problem(r, 405, None, path, f"{method} {path}")
        allow = _allow(r)
        assert must <= allow and method not in allow, f"{method} {path}: Allow {r.headers.get('allow')!r}"
    assert http("GET", f"{S.base}/v1/links/{code}").status == 200, "the link survives"


def test_request_id_echoed_or_generated():
    rid = f"it-{RUN}-Req_0123"
    r = http("GET", S.base + "/healthz", {"X-Request-Id": rid})
    assert r.headers.get("x-request-id") == rid, r.headers.get("x-request-id")
    r = http("GET", S.base + "/v1/links/nOsUcH4", {"X-Request-Id": rid})
    doc = assert_problem(r, 404, "link-not-found", "/v1/links/nOsUcH4")
    assert doc["request_id"] == rid and r.headers.get("x-request-id") == rid
    r = create({"url": new_url()}, S.rw, headers={"X-Request-Id": rid})
    assert r.status == 201 and r.headers.get("x-request-id") == rid
    a = http("GET", S.base + "/healthz").headers.get("x-request-id")
    b = http("GET", S.base + "/healthz").headers.get("x-request-id")
    assert a and b and a != b, f"generated ids {a!r} {b!r}"
    # every answer carries it: 201, 302, 304, 204, 401
    doc = create_ok({"url": new_url()})
    seen = [http("GET", f"{S.base}/{doc['code']}"),
            http("GET", f"{S.base}/v1/links/{doc['code']}", {"If-None-Match": http(
                "GET", f"{S.base}/v1/links/{doc['code']}").headers.get("etag", "")}),
            http("DELETE", f"{S.base}/v1/links/{doc['code']}", S.rw.bearer),
            http("GET", S.base + "/v1/links")]
    assert [r.status for r in seen] == [302, 304, 204, 401], [r.status for r in seen]
    assert all(r.headers.get("x-request-id") for r in seen), [r.headers.get("x-request-id") for r in seen]
    invalid = "bad id " * 100  # spaces, 700 characters
    r = http("GET", S.base + "/v1/links/nOsUcH4", {"X-Request-Id": invalid})
    got = r.headers.get("x-request-id")
    assert got and got != invalid and " " not in got, f"invalid id must be replaced: {got!r}"
    assert json.loads(r.body)["request_id"] == got


def test_logs_are_json_lines_with_access_log():
    marker = f"nOsUcH{RUN}"
    http("GET", f"{S.base}/v1/links/{marker}")

    def logged():
        return any(marker in ln for ln in S.app.stderr_text().splitlines())

    wait_until(logged, 5, "the access log line of the request")
    for ln in S.app.stderr_text().splitlines():
        if ln.strip():
            try:
                obj = json.loads(ln)
            except ValueError:
                raise AssertionError(f"stderr line is not JSON: {ln[:200]!r}") from None
            assert isinstance(obj, dict), f"stderr line is not a JSON object: {ln[:200]!r}"


def test_redis_key_space_layout():
    doc = create_ok({"url": new_url(), "ttl_s": 100})
    code = doc["code"]
    raw = S.redis.cmd("GET", f"app:link:{{{code}}}")
    assert raw is not None, f"no app:link:{{{code}}}; keys with the code: {keys_containing(S.redis, code)}"
    rec = json.loads(raw)
    assert rec.get("url") == doc["url"] and rec.get("owner") == S.rw.id, rec
    assert isinstance(rec.get("created_ms"), int) and isinstance(rec.get("expires_ms"), int), rec
    assert rec["expires_ms"] - rec["created_ms"] == 100_000, rec
    ttl = S.redis.cmd("TTL", f"app:link:{{{code}}}")
    assert 100 + 7 * 86400 - 30 <= ttl <= 100 + 7 * 86400, f"TTL {ttl}: expected ttl_s + 7 days"
    doc2 = create_ok({"url": new_url()})
    assert S.redis.cmd("TTL", f"app:link:{{{doc2['code']}}}") == -1, "a link without ttl_s has no expiry"
    assert code in S.redis.cmd("ZRANGE", f"app:owner:{{{S.rw.id}}}:links", 0, -1), "not in the owner index"
    assert int(S.redis.cmd("GET", "app:seq")) >= 2
    sha = S.redis.cmd("GET", f"app:keyid:{{{S.rw.id}}}")
    assert sha == sha256_hex(S.rw.key), f"app:keyid:{{{S.rw.id}}} = {sha!r}"
    h = S.redis.cmd("HGETALL", f"app:key:{{{sha}}}")
    fields = dict(zip(h[::2], h[1::2]))
    assert fields.get("id") == S.rw.id and fields.get("name") == "it-rw", fields
    assert "links:read" in fields.get("scopes", "") and "links:write" in fields.get("scopes", ""), fields
    assert fields.get("created_at"), fields


# --- instances with other flags -------------------------------------------------------


def test_redirect_301_instance_and_public_url():
    doc = create_ok({"url": new_url("301/")})
    doc_ttl = create_ok({"url": new_url("301ttl/"), "ttl_s": 100})
    with start_shortener(S.redis.url, "--redirect", "301", "--public-url", "http://sho.rt:8080",
                         label="shortener-301") as p:
        r = http("GET", f"{p.base_url}/{doc['code']}")
        assert r.status == 301, f"{r.status} {r.body[:200]!r}"
        assert r.headers.get("location") == doc["url"]
        assert r.headers.get("cache-control") == "public, max-age=86400", r.headers.get("cache-control")
        r = http("GET", f"{p.base_url}/{doc_ttl['code']}")
        m = re.fullmatch(r"public, max-age=(\d+)", r.headers.get("cache-control", ""))
        assert r.status == 301 and m and 90 <= int(m.group(1)) <= 100, (r.status, r.headers.get("cache-control"))
        c = create_ok({"url": new_url()}, base=p.base_url)
        assert c["short_url"] == f"http://sho.rt:8080/{c['code']}", c["short_url"]
        # the representation is built per instance: the main one still says its own address
        assert http("GET", f"{S.base}/v1/links/{c['code']}").json()["short_url"] == f"{S.base}/{c['code']}"
        assert http("GET", f"{S.base}/{doc['code']}").status == 302, "the main instance still answers 302"
        # SIGINT is a clean stop too
        assert p.stop(sig=signal.SIGINT) == 0, f"exit code on SIGINT:\n{p.stderr_tail()}"


def test_options_from_environment_flag_wins():
    doc = create_ok({"url": new_url()})
    env = {"SLUICE_REDIS": "ftp://127.0.0.1:1", "SLUICE_REDIRECT": "301"}
    with start_shortener(S.redis.url, env=env, label="shortener-env") as p:  # --redis beats SLUICE_REDIS
        r = http("GET", f"{p.base_url}/{doc['code']}")
        assert r.status == 301, f"SLUICE_REDIRECT=301 ignored: {r.status}"
    port = free_port()
    cp = run_program(BIN, ["--listen", f"127.0.0.1:{port}"], env={"SLUICE_REDIS": "ftp://127.0.0.1:1"})
    assert cp.returncode == 2, f"bad SLUICE_REDIS: exit {cp.returncode}"
    assert "scheme" in (cp.stdout + cp.stderr).decode(errors="replace").lower()


def test_redis_unavailable_503_then_recovery():
    redis = RedisServer(name="redis-outage")  # not started yet: "Redis need not be up"
    try:
        p = start_shortener(redis.url, label="shortener-outage", ready_path="/healthz")
        with p:
            r = http("GET", p.base_url + "/readyz")
            assert r.status == 503, f"/readyz with Redis down: {r.status}"
            redis.start()
            wait_until(lambda: http("GET", p.base_url + "/readyz").status == 200, 10, "/readyz 200 once Redis is up")
            k = mint_key(redis.url)
            doc = create_ok({"url": new_url()}, k, base=p.base_url)
            code = doc["code"]
            redis.stop()
            checks = [
                ("POST", "/v1/links", k.bearer, {"url": new_url()}),
                ("GET", f"/v1/links/{code}", None, None),
                ("GET", f"/{code}", None, None),
                ("GET", "/v1/links", k.bearer, None),
                ("GET", f"/v1/links/{code}/stats", k.bearer, None),
            ]
            for method, path, h, body in checks:
                r = http(method, p.base_url + path, h, body)
                assert_problem(r, 503, "store-unavailable", path, f"{method} {path} with Redis down")
                assert r.headers.get("retry-after") == "1", f"{method} {path}: Retry-After {r.headers.get('retry-after')!r}"
            assert http("GET", p.base_url + "/readyz").status == 503
            assert http("GET", p.base_url + "/healthz").status == 200
            assert p.running, "the process must survive a Redis outage"
            redis.restart()  # same port, empty (no persistence)
            wait_until(lambda: http("GET", p.base_url + "/readyz").status == 200, 10, "/readyz 200 after restart")
            wait_until(lambda: http("GET", f"{p.base_url}/v1/links/{code}").status == 404, 10,
                       "reads to answer again (404: the restarted Redis is empty)")
            k2 = mint_key(redis.url)
            ikey = {"Idempotency-Key": f"recover-{RUN}"}  # 5xx answers are not stored: retrying is safe
            body = json.dumps({"url": new_url()}).encode()

            def post_not_503():
                x = create(None, k2, base=p.base_url, headers=ikey, raw=body)
                return x if x.status != 503 else None

            r = wait_until(post_not_503, 10, "POST to succeed again", interval_s=0.1)
            assert r.status == 201, f"{r.status} {r.body[:300]!r}"
    finally:
        redis.stop()


def test_redis_replica_serves_reads():
    replica = RedisServer(replicaof=S.redis, name="redis-replica").start()
    try:
        wait_until(lambda: replica.info("replication").get("master_link_status") == "up", 10, "replica link up")
        with start_shortener(S.redis.url, "--redis-replica", replica.url, label="shortener-replica") as p:
            doc = create_ok({"url": new_url("replica/")}, base=p.base_url)
            code = doc["code"]
            wait_until(lambda: http("GET", f"{p.base_url}/v1/links/{code}").status == 200, 5, "replicated read")
            rep0, prim0 = replica.command_calls("get"), S.redis.command_calls("get")
            for _ in range(3):
                g = http("GET", f"{p.base_url}/v1/links/{code}")
                assert g.status == 200 and g.json()["url"] == doc["url"]
            rep1, prim1 = replica.command_calls("get"), S.redis.command_calls("get")
            assert rep1 >= rep0 + 3, f"replica GET calls {rep0} -> {rep1} for 3 reads"
            assert prim1 == prim0, f"primary GET calls {prim0} -> {prim1}: reads did not go to the replica"
            r = http("GET", f"{p.base_url}/{code}")
            assert r.status == 302 and r.headers.get("location") == doc["url"]
            assert replica.command_calls("get") > rep1, "redirect read did not use the replica"
            assert http("GET", p.base_url + "/readyz").status == 200
            replica.stop()
            g = http("GET", f"{p.base_url}/v1/links/{code}")
            assert g.status == 200 and g.json()["url"] == doc["url"], f"no fallback to the primary: {g.status}"
            r = http("GET", f"{p.base_url}/{code}")
            assert r.status == 302, f"redirect without the replica: {r.status}"
            assert http("GET", p.base_url + "/readyz").status == 503, "/readyz: 200 only when every Redis answers"
    finally:
        replica.stop()


def test_redis_shards_three():
    shards = []
    try:
        for i in range(3):
            shards.append(RedisServer(name=f"redis-shard{i}").start())
        urls = ",".join(s.url for s in shards)
        with start_shortener(S.redis.url, "--redis-shards", urls, label="shortener-shards") as p:
            docs = []
            with http_keepalive(p.base_url) as c:
                for i in range(30):
                    r = c.request("POST", "/v1/links", S.rw.bearer, {"url": new_url(f"shard{i}/")})
                    assert r.status == 201, f"create {i}: {r.status} {r.body[:300]!r}"
                    docs.append(r.json())
                for d in docs:
                    g = c.request("GET", f"/v1/links/{d['code']}")
                    assert g.status == 200 and g.json() == d, f"{d['code']}: {g.status}"
            codes = {d["code"] for d in docs}
            per_shard = []
            for s in shards:
                mine = [k for k in s.scan_keys("app:link:*") if any(c in k for c in codes)]
                per_shard.append(len(mine))
            assert all(n >= 1 for n in per_shard), f"links per shard {per_shard}"
            assert sum(per_shard) == 30, f"links per shard {per_shard} (sum must be 30)"
            on_primary = [k for k in S.redis.scan_keys("app:link:*") if any(c in k for c in codes)]
            assert on_primary == [], f"sharded links also on the primary: {on_primary[:5]}"
            # listing reads the owner index on the primary and each link from its shard
            lst = http("GET", f"{p.base_url}/v1/links?limit=5", S.rw.bearer)
            assert lst.status == 200, lst.status
            assert lst.json()["links"] == list(reversed(docs))[:5], "list through the sharded instance"
            # keys, owner indexes and idempotency records stay on the primary
            for s in shards:
                stray = [k for k in s.scan_keys("*") if not re.match(r"app:(link|clicks|daily|uv):", k)]
                assert stray == [], f"non-link keys on a shard: {stray[:5]}"
            owned = set(S.redis.cmd("ZRANGE", f"app:owner:{{{S.rw.id}}}:links", 0, -1))
            assert codes <= owned, "sharded links missing from the owner index on the primary"
            # statistics live with their link
            code = docs[0]["code"]
            assert http("GET", f"{p.base_url}/{code}").status == 302
            home = [s for s in shards if any(code in k for k in s.scan_keys("app:link:*"))]
            assert len(home) == 1, f"{code} on {len(home)} shards"
            wait_until(lambda: any(code in k for k in home[0].scan_keys("app:clicks:*")), 5, "click counter on the link's shard")
            st = http("GET", f"{p.base_url}/v1/links/{code}/stats", S.rw.bearer)
            assert st.status == 200 and st.json()["clicks"] == 1, (st.status, st.body[:200])
            d = http("DELETE", f"{p.base_url}/v1/links/{code}", S.rw.bearer)
            assert d.status == 204, d.status
            assert not any(code in k for k in home[0].scan_keys("*")), "delete left keys on the shard"
            assert http("GET", p.base_url + "/readyz").status == 200
    finally:
        for s in shards:
            s.stop()


def _run_expect_exit(args, code, words, env=None):
    port = free_port()
    cp = run_program(BIN, ["--listen", f"127.0.0.1:{port}", *args], env=env, timeout_s=10)
    out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
    assert cp.returncode == code, f"{args}: exit {cp.returncode}, expected {code}:\n{out[-800:]}"
    for w in words:
        assert w in out.lower(), f"{args}: message does not mention {w!r}:\n{out[-800:]}"


def test_bad_redis_url_exits_2():
    _run_expect_exit(["--redis", "ftp://127.0.0.1:6379"], 2, ["scheme"])
    _run_expect_exit(["--redis", "redis://127.0.0.1:99999"], 2, ["port"])
    _run_expect_exit(["--redis", "redis://127.0.0.1:notaport"], 2, ["port"])
    _run_expect_exit(["--redis", S.redis.url, "--redis-replica", "http://127.0.0.1:1"], 2, ["scheme"])
    _run_expect_exit(["--redis", S.redis.url, "--redis-shards", f"{S.redis.url},nope://127.0.0.1:1"], 2, ["scheme"])
    _run_expect_exit(["--redis", S.redis.url, "--redis-replica", S.redis.url, "--redis-shards", S.redis.url],
                     2, ["replica", "shard"])


def test_help_and_version_exit_0():
    cp = run_program(BIN, ["--help"])
    out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
    assert cp.returncode == 0, f"--help exit {cp.returncode}"
    for w in ("--listen", "--redis", "keys"):
        assert w in out, f"--help does not mention {w}"
    cp = run_program(BIN, ["--version"])
    out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
    assert cp.returncode == 0, f"--version exit {cp.returncode}"
    assert re.search(r"\d", out), f"--version printed {out!r}"


# --- last: things that wait, and the clean stop ---------------------------------------


def _start_in_flight_post(port, key):
    """Open a POST whose body is not complete yet; return (socket, rest of the body) once
    the server has read the headers (its `100 Continue` proves it)."""
    body = json.dumps({"url": new_url("drain/")}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall((f"POST /v1/links HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               f"Expect: 100-continue\r\nConnection: close\r\n\r\n").encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        assert chunk, f"connection closed before 100 Continue: {got!r}"
        got += chunk
    assert got.startswith(b"HTTP/1.1 100"), f"expected 100 Continue, got {got[:80]!r}"
    s.sendall(body[:5])
    return s, body[5:]


def _refuses_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_sigterm_drains_in_flight_request():
    with start_shortener(S.redis.url, "--drain-timeout-s", "5", label="shortener-drain") as p:
        s, rest = _start_in_flight_post(p.port, S.rw.key)
        try:
            os.kill(p.pid, signal.SIGTERM)
            wait_until(lambda: _refuses_connections(p.port), 5, "the listener to stop accepting after SIGTERM")
            assert p.running, "exited with a request in flight"
            s.sendall(rest)
            resp = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                resp += chunk
        finally:
            s.close()
        assert resp.startswith(b"HTTP/1.1 201"), f"in-flight request during drain: {resp[:200]!r}"
        assert p.wait_exit(10) == 0, f"exit code after drain:\n{p.stderr_tail()}"
    # a request that never completes is abandoned after --drain-timeout-s
    with start_shortener(S.redis.url, "--drain-timeout-s", "1", label="shortener-drain1") as p:
        s, _ = _start_in_flight_post(p.port, S.rw.key)
        try:
            t0 = time.monotonic()
            os.kill(p.pid, signal.SIGTERM)
            rc = p.wait_exit(6)
            took = time.monotonic() - t0
        finally:
            s.close()
        assert rc == 0, f"exit code after a drain timeout: {rc}\n{p.stderr_tail()}"
        assert 0.8 <= took <= 4, f"exited {took:.2f}s after SIGTERM with --drain-timeout-s 1"


def test_short_lived_token_expires():
    tok = S.short_token["access_token"]
    deadline_s = max(1.0, S.short_token_exp + 30 + 10 - time.time())
    wait_until(lambda: http("GET", S.base + "/v1/links?limit=1", bearer(tok)).status == 401, deadline_s,
               "the 1 s token to be rejected after exp + 30 s leeway", interval_s=0.1)
    assert time.time() >= S.short_token_exp + 29, "rejected before exp + 30 s leeway"
    _assert_invalid_token(tok, "expired token")


def test_sigterm_exits_0():
    assert S.app.running
    rc = S.app.stop(sig=signal.SIGTERM)
    assert not S.app.killed, "did not exit on SIGTERM within the deadline"
    assert rc == 0, f"exit code {rc} on SIGTERM:\n{S.app.stderr_tail()}"
