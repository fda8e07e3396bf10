"""A real sluice-agent for the integration tests (test_agent.py, test_ratelimit.py).

`Agent` starts sluice-agent on free loopback ports, waits for /healthz on the admin port and
for the proxy port to accept, and talks to both. A test module subclasses it to set its own
defaults (admin token, id and label prefixes, extra flags) as class attributes.
"""

import collections
import http.client as httplib
import os
import socket

import harness
from harness import LOOPBACK, Program, bin_path, free_port, http, run_program, wait_until

BIN = "sluice-agent"

_seq = collections.Counter()  # agents started so far, per id prefix (numbers ids and labels)


def wait_binary(name=BIN, timeout_s=30):
    # the build may be rewriting the binary: missing or not executable for a moment
    wait_until(lambda: bin_path(name).exists() and os.access(bin_path(name), os.X_OK), timeout_s,
               f"{bin_path(name)} to exist")


def retry_exec(fn, what, timeout_s=30, name=BIN):
    """fn() starting a binary, retried while the build rewrites it (ENOENT, EACCES, ETXTBSY)."""
    def attempt():
        wait_binary(name, timeout_s)
        return fn() or True
    return wait_until(attempt, timeout_s, what, interval_s=0.1,
                      ignore=(FileNotFoundError, PermissionError, OSError))


def run_agent(args, timeout_s=10):
    """sluice-agent run to completion (--help, bad flags ...); a CompletedProcess."""
    return retry_exec(lambda: run_program(BIN, args, timeout_s=timeout_s), f"{BIN} {args[:2]}")


def request(port, method, path, headers=None, source=None, timeout_s=10.0):
    """One request to 127.0.0.1:port on a fresh connection, optionally from another loopback
    source address (127.0.0.2 ...: a different client ip for the agent). A harness.Response."""
    conn = httplib.HTTPConnection(LOOPBACK, port, timeout=timeout_s,
                                  source_address=(source, 0) if source else None)
    try:
        return harness._exchange(conn, method, path, headers, None)[0]
    finally:
        conn.close()


class Agent:
    """A sluice-agent on free loopback ports. `with Agent(...).start() as a:` stops it by PID
    on the way out and, when the block ended cleanly, asserts exit code 0 on SIGTERM.

    Class attributes a subclass sets: `token` (--admin-token, None for none; also the
    default bearer of admin()), `id_prefix` and `run` (ids are PREFIX-RUN-N), `label_prefix`
    (labels are PREFIX-N unless given), `log_level` (--log-level when set)."""

    token = None
    id_prefix = "agent"
    run = "0"
    label_prefix = "agent"
    log_level = None

    def __init__(self, upstream_port, *extra, redis=None, token=..., workers=2, agent_id=None,
                 service=None, label=None, env=None):
        _seq[self.id_prefix] += 1
        n = _seq[self.id_prefix]
        self.token = self.token if token is ... else token
        self.port = free_port()
        self.admin_port = free_port()
        self.id = agent_id or f"{self.id_prefix}-{self.run}-{n}"
        args = ["--listen", f"{LOOPBACK}:{self.port}", "--admin", f"{LOOPBACK}:{self.admin_port}",
                "--upstream", f"{LOOPBACK}:{upstream_port}", "--workers", str(workers),
                "--id", self.id]
        if self.token:
            args += ["--admin-token", self.token]
        if self.log_level:
            args += ["--log-level", self.log_level]
        if service:
            args += ["--service", service]
        if redis is not None:
            args += ["--redis", redis.url]
        args += [str(a) for a in extra]
        self.prog = Program(BIN, args, env=env, port=self.admin_port,
                            label=label or f"{self.label_prefix}-{n}")

    def start(self, timeout_s=10):
        retry_exec(self.prog.start, f"start {self.prog.label}")
        try:
            self.prog.wait_http_ready("/healthz", timeout_s=timeout_s)

            def accepting():
                with socket.create_connection((LOOPBACK, self.port), timeout=1):
                    return True

            wait_until(accepting, timeout_s, f"{self.prog.label} proxy port {self.port}")
        except BaseException:
            self.prog.stop()
            raise
        return self

    @property
    def pid(self):
        return self.prog.pid

    def url(self, path):
        return f"http://{LOOPBACK}:{self.port}{path}"

    def admin_url(self, path):
        return f"http://{LOOPBACK}:{self.admin_port}{path}"

    def get(self, path, headers=None, method="GET", source=None, timeout_s=10.0):
        """A request through the proxy port on a fresh connection (see request())."""
        return request(self.port, method, path, headers, source=source, timeout_s=timeout_s)

    def admin(self, method, path, body=None, token=True, headers=None):
        """A request to the admin port. token: True for `Bearer <the agent's token>`, a string
        for the Authorization header as is, None for none."""
        h = dict(headers or {})
        if token is True:
            if self.token:
                h["Authorization"] = f"Bearer {self.token}"
        elif token:
            h["Authorization"] = token
        return http(method, self.admin_url(path), h, body)

    def stats(self):
        r = self.admin("GET", "/v1/stats", token=None)
        assert r.status == 200, f"{self.prog.label} /v1/stats: {r.status} {r.body[:300]!r}"
        return r.json()

    def version(self):
        return self.stats()["policy_version"]

    def policies(self):
        r = self.admin("GET", "/v1/policies", token=None)
        assert r.status == 200, f"GET /v1/policies: {r.status} {r.body[:300]!r}"
        return r.json()

    def counters(self, name):
        """The limiter's counters of one policy in /v1/stats (without the name)."""
        for p in self.stats()["limiter"]["policies"]:
            if p["policy"] == name:
                return {k: v for k, v in p.items() if k != "policy"}
        raise AssertionError(f"{self.prog.label}: no counters for policy {name!r} in /v1/stats")

    def metrics(self):
        r = self.admin("GET", "/metrics", token=None)
        assert r.status == 200, r
        return r.text()

    def stop_ok(self):
        rc = self.prog.stop()
        assert rc == 0, (f"{self.prog.label} exited with {rc} on SIGTERM (expected 0)"
                         + (" after SIGKILL" if self.prog.killed else "")
                         + f":\n{self.prog.stderr_tail()}")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return self.prog.__exit__(exc_type, exc, tb)
