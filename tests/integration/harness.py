"""Integration-test harness: real redis-server and real sluice binaries on loopback.

No mocks. Every process started here is registered, stopped by its PID (never by name)
when the test that started it ends and, as a last resort, at interpreter exit. Nothing
waits by sleeping: readiness is polled with a deadline (wait_until).

Only the Python 3.11 standard library is used.
"""

import atexit
import collections
import hashlib
import http.client as httplib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"

_registry = []  # every process started, in start order (RedisServer and Program)
_tmp_root = None


# --- small utilities ------------------------------------------------------------------


def tmp_root():
    """One temp dir per test run; each process gets its own subdirectory."""
    global _tmp_root
    if _tmp_root is None:
        _tmp_root = tempfile.mkdtemp(prefix="sluice-it-")
    return _tmp_root


def _subdir(label):
    return tempfile.mkdtemp(prefix=label + "-", dir=tmp_root())


def bin_dir():
    """SLUICE_BIN_DIR (default build/bin), relative paths taken from the repo root."""
    d = Path(os.environ.get("SLUICE_BIN_DIR") or "build/bin")
    return d if d.is_absolute() else REPO_ROOT / d


def bin_path(name):
    return bin_dir() / name


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_until(fn, timeout_s, what, interval_s=0.02, ignore=(OSError,)):
    """Call fn until it returns a truthy value; return that value.

    Exceptions listed in `ignore` count as "not yet". Raises TimeoutError naming `what`
    (and the last value or exception seen) when the deadline passes.
    """
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except ignore as e:  # noqa: PERF203 - polling on purpose
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")
        time.sleep(interval_s)


def tail(path, lines=40):
    """The last `lines` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def sha256_hex(data):
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def _clean_env(extra=None):
    """The caller's environment minus SLUICE_* (so a developer's shell cannot change what
    a test configures), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def _stop_popen(proc, sig=signal.SIGTERM, timeout_s=10.0):
    """Signal one child by PID, wait with a deadline, then SIGKILL. Returns (rc, killed)."""
    if proc.poll() is not None:
        return proc.returncode, False
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout_s), False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10), True


def registered():
    """All processes started so far (for the runner's log tails)."""
    return list(_registry)


def stop_all():
    """Stop every process still running, newest first. Safe to call repeatedly."""
    for p in reversed(_registry):
        try:
            if p.running:
                p.stop(timeout_s=5)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(stop_all)


def remove_tmp():
    global _tmp_root
    if _tmp_root is not None:
        shutil.rmtree(_tmp_root, ignore_errors=True)
        _tmp_root = None


# --- RESP2 ----------------------------------------------------------------------------


class RedisError(Exception):
    """An error reply (-ERR ...) from Redis."""


def resp_encode(args):
    """Encode a command as a RESP2 array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, bytes):
            b = a
        elif isinstance(a, str):
            b = a.encode()
        elif isinstance(a, (int, float)) and not isinstance(a, bool):
            b = str(a).encode()
        else:
            raise TypeError(f"cannot send {a!r} to Redis")
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RespReader:
    """Decode RESP2 replies from a socket (or anything with recv)."""

    def __init__(self, sock, decode=True):
        self.sock = sock
        self.buf = b""
        self.decode = decode

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2 :]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def reply(self):
        """One reply. Error replies nested in arrays come back as RedisError values."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._exact(n)
            return data.decode("utf-8", "surrogateescape") if self.decode else data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RedisError(f"bad RESP reply {line[:40]!r}")


class RespClient:
    """A tiny blocking Redis client: one connection, reconnects after an error."""

    def __init__(self, host, port, timeout_s=2.0):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.sock = None
        self.reader = None

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                self.reader = None

    def _connect(self):
        s = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s

    def cmd(self, *args, decode=True):
        if self.sock is None:
            self._connect()
        try:
            self.sock.sendall(resp_encode(args))
            r = RespReader(self.sock, decode=decode)
            if self.reader is not None and self.reader.buf:
                r.buf = self.reader.buf
            self.reader = r
            v = r.reply()
        except (OSError, ConnectionError):
            self.close()
            raise
        if isinstance(v, RedisError):
            raise v
        return v


# --- processes ------------------------------------------------------------------------


class RedisServer:
    """A redis-server on 127.0.0.1 with its own temp dir, no persistence."""

    def __init__(self, port=None, replicaof=None, name="redis", extra_args=()):
        self.port = port or free_port()
        self.replicaof = replicaof  # a RedisServer, a (host, port) tuple, or None
        self.name = name
        self.extra_args = list(extra_args)
        self.dir = _subdir(f"{name}-{self.port}")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        self.exit_code = None
        self._client = None
        self.seq = None
        self.exe = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"

    @property
    def url(self):
        return f"redis://{LOOPBACK}:{self.port}"

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def args(self):
        a = [
            self.exe,
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--dir", self.dir,
            "--daemonize", "no",
            "--logfile", "",
            # a replica's first sync must not wait the default 5 s
            "--repl-diskless-sync-delay", "0",
        ]
        if self.replicaof is not None:
            if isinstance(self.replicaof, RedisServer):
                host, port = LOOPBACK, self.replicaof.port
            else:
                host, port = self.replicaof
            assert host == LOOPBACK, "only loopback targets"
            a += ["--replicaof", host, str(port)]
        return a + self.extra_args

    def start(self, timeout_s=10.0):
        if self.running:
            raise RuntimeError(f"{self.name} already running (pid {self.proc.pid})")
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.args(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.dir, start_new_session=True,
            )
        finally:
            log.close()
        self.exit_code = None
        _registry.append(self)
        self.seq = len(_registry)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} while starting:\n{tail(self.log_path)}")
            return self.ping()

        wait_until(ready, timeout_s, f"{self.name} on port {self.port} to answer PING")
        return self

    def ping(self):
        try:
            return self.cmd("PING") == "PONG"
        except RedisError as e:  # e.g. LOADING
            if "LOADING" in str(e):
                return False
            raise

    def stop(self, timeout_s=10.0, sig=signal.SIGTERM):
        if self._client is not None:
            self._client.close()
        if self.proc is None:
            return None
        rc, _ = _stop_popen(self.proc, sig, timeout_s)
        self.exit_code = rc
        return rc

    def restart(self, timeout_s=10.0):
        """Stop (if running) and start again on the same port (the data is gone)."""
        if self.running:
            self.stop()
        return self.start(timeout_s)

    def client(self):
        if self._client is None:
            self._client = RespClient(LOOPBACK, self.port)
        return self._client

    def cmd(self, *args, decode=True):
        return self.client().cmd(*args, decode=decode)

    def info(self, section=None):
        raw = self.cmd("INFO", section) if section else self.cmd("INFO")
        out = {}
        for line in raw.splitlines():
            if not line or line.startswith("#") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            out[k] = v
        return out

    def command_calls(self, command):
        """`calls` of INFO commandstats for one command (0 if never called)."""
        v = self.info("commandstats").get(f"cmdstat_{command.lower()}")
        if not v:
            return 0
        fields = dict(kv.split("=", 1) for kv in v.split(","))
        return int(fields["calls"])

    def scan_keys(self, pattern="*"):
        cursor, keys = "0", []
        while True:
            cursor, batch = self.cmd("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            keys.extend(batch)
            if cursor == "0":
                return keys

    def log_tail(self, lines=15):
        return tail(self.log_path, lines)

    def describe(self):
        return f"{self.name}[pid {self.pid}, port {self.port}]"


class Program:
    """A binary from the bin dir, stdout/stderr captured to files under a temp dir."""

    def __init__(self, name, args=(), env=None, port=None, label=None):
        self.name = name
        self.args = [str(a) for a in args]
        self.env = env
        self.port = port
        self.label = label or name
        self.dir = _subdir(self.label)
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.proc = None
        self.exit_code = None
        self.killed = False
        self.seq = None

    @property
    def base_url(self):
        if self.port is None:
            raise RuntimeError(f"{self.label}: no HTTP port given")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        exe = bin_path(self.name)
        if not exe.exists():
            raise FileNotFoundError(f"{exe} does not exist (build it, or set SLUICE_BIN_DIR)")
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [str(exe), *self.args], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=_clean_env(self.env), cwd=self.dir, start_new_session=True,
            )
        finally:
            out.close()
            err.close()
        _registry.append(self)
        self.seq = len(_registry)
        return self

    def wait_http_ready(self, path="/healthz", timeout_s=10.0, status=200):
        """Poll GET path until it answers `status`; fail early if the process dies."""
        url = self.base_url + path

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self.proc.returncode} before {path} answered"
                    f" {status}:\n{self.stderr_tail()}")
            return http("GET", url, timeout_s=2).status == status

        wait_until(ready, timeout_s, f"{self.label} GET {path} -> {status}",
                   ignore=(OSError, httplib.HTTPException))
        return self

    def stop(self, sig=signal.SIGTERM, timeout_s=10.0):
        """SIGTERM (or `sig`), wait with a deadline, then SIGKILL. Returns the exit code
        (negative for a signal, as subprocess reports it)."""
        if self.proc is None:
            return None
        if self.exit_code is not None and self.proc.poll() is not None:
            return self.exit_code
        rc, killed = _stop_popen(self.proc, sig, timeout_s)
        self.killed = self.killed or killed
        self.exit_code = rc
        return rc

    def wait_exit(self, timeout_s=10.0):
        """Wait for the process to exit on its own; returns the exit code."""
        try:
            self.exit_code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.label} did not exit within {timeout_s}s") from None
        return self.exit_code

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, lines=40):
        return tail(self.stderr_path, lines)

    def log_tail(self, lines=40):
        return self.stderr_tail(lines)

    def describe(self):
        return f"{self.label}[pid {self.pid}" + (f", port {self.port}]" if self.port else "]")

    # `with Program(...).start() as p:` stops p on the way out; on a clean exit of the
    # block, a non-zero exit code fails the test (ASan reports leaks that way).
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        rc = self.stop()
        if exc_type is None and rc != 0:
            raise AssertionError(
                f"{self.label} exited with {rc} on SIGTERM (expected 0)"
                + (" after SIGKILL" if self.killed else "") + f":\n{self.stderr_tail()}")
        return False


def run_program(name, args=(), env=None, timeout_s=10.0, input_bytes=None):
    """Run a binary to completion (e.g. `keys create`); returns CompletedProcess with str
    stdout/stderr. subprocess.run kills the child if the deadline passes."""
    exe = bin_path(name)
    if not exe.exists():
        raise FileNotFoundError(f"{exe} does not exist (build it, or set SLUICE_BIN_DIR)")
    return subprocess.run(
        [str(exe), *[str(a) for a in args]], input=input_bytes,
        stdin=None if input_bytes is not None else subprocess.DEVNULL,
        capture_output=True, env=_clean_env(env), timeout=timeout_s, text=False,
    )


# --- HTTP -----------------------------------------------------------------------------


class Response(collections.namedtuple("Response", "status headers body")):
    """(status, headers with lower-case keys, body bytes); unpacks as a 3-tuple."""

    def json(self):
        return json.loads(self.body)

    def text(self):
        return self.body.decode("utf-8", "replace")


def _target(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or u.hostname != LOOPBACK:
        raise ValueError(f"tests only talk to http://{LOOPBACK}: {url}")
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return u.hostname, u.port or 80, path


def _prepare(headers, body):
    h = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k in h):
            h["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode("utf-8")
    return h, body


def _exchange(conn, method, path, headers, body):
    h, b = _prepare(headers, body)
    conn.request(method, path, body=b, headers=h)
    r = conn.getresponse()
    data = r.read()
    hdrs = {}
    for k, v in r.getheaders():
        k = k.lower()
        hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
    return Response(r.status, hdrs, data), r


def http(method, url, headers=None, body=None, timeout_s=10.0):
    """One request on a fresh connection. `body` may be bytes, str, or a dict/list (sent
    as JSON with Content-Type application/json unless one is given)."""
    host, port, path = _target(url)
    conn = httplib.HTTPConnection(host, port, timeout=timeout_s)
    try:
        resp, _ = _exchange(conn, method, path, headers, body)
        return resp
    finally:
        conn.close()


class KeepAliveClient:
    """Several requests over one persistent connection (HTTP/1.1 keep-alive).

    `connects` counts TCP connections opened: it stays 1 while the server keeps the
    connection open."""

    def __init__(self, base_url, timeout_s=10.0):
        host, port, _ = _target(base_url)
        self.conn = httplib.HTTPConnection(host, port, timeout=timeout_s)
        self.connects = 0

    def request(self, method, path, headers=None, body=None):
        if self.conn.sock is None:
            self.conn.connect()
            self.connects += 1
        resp, raw = _exchange(self.conn, method, path, headers, body)
        if raw.will_close:
            self.conn.close()
        return resp

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def http_keepalive(base_url, timeout_s=10.0):
    return KeepAliveClient(base_url, timeout_s)


if __name__ == "__main__":
    # Self-check of the harness alone: start Redis, talk RESP, restart, replicate, stop.
    r = RedisServer(name="selfcheck").start()
    try:
        assert r.cmd("SET", "k", "v") == "OK"
        assert r.cmd("GET", "k") == "v"
        assert r.cmd("GET", "missing") is None
        assert r.cmd("INCR", "n") == 1
        assert r.cmd("RPUSH", "l", "a", "b") == 2
        assert r.cmd("LRANGE", "l", 0, -1) == ["a", "b"]
        assert r.cmd("SET", "bin", b"\x00\r\n\xff") == "OK"
        assert r.cmd("GET", "bin", decode=False) == b"\x00\r\n\xff"
        try:
            r.cmd("INCR", "k")
            raise AssertionError("expected an error reply")
        except RedisError as e:
            assert "not an integer" in str(e)
        assert r.cmd("PING") == "PONG"  # connection still usable after an error reply
        assert sorted(r.scan_keys("*")) == ["bin", "k", "l", "n"]
        replica = RedisServer(replicaof=r, name="selfcheck-replica").start()
        try:
            wait_until(lambda: replica.cmd("GET", "k") == "v", 10, "replication")
            assert replica.command_calls("get") >= 1
        finally:
            assert replica.stop() == 0
        port = r.port
        assert r.stop() == 0 and not r.running
        try:
            RespClient(LOOPBACK, port, timeout_s=1).cmd("PING")
            raise AssertionError("redis still answering after stop")
        except OSError:
            pass
        r.restart()
        assert r.port == port and r.cmd("GET", "k") is None  # no persistence
        p = free_port()
        assert 0 < p < 65536
        print("harness self-check: ok")
    finally:
        stop_all()
        remove_tmp()
