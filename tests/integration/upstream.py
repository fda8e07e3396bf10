"""A small HTTP/1.1 test upstream for the agent's integration tests (a fixture, not a mock
of anything sluice ships).

Used two ways:
  - in-process: `Upstream().start()` serves on a free 127.0.0.1 port from daemon threads
    and lets a test read what it received (`requests`, `connections`);
  - as a program (for `sluice-agent --exec`): `python3 upstream.py --port P [--term-file F]`;
    on SIGTERM it writes "TERM <pid>" to F and exits 0.

Endpoints (any method unless noted):
  /echo...          JSON: method, path, version, headers ([[name, value], ...] as
                    received), body (latin-1 text when <= 64 KiB), body_len, body_sha256,
                    trailers (chunked request bodies), te (the Transfer-Encoding received),
                    conn (which accepted connection carried it); HEAD gets the headers only
  /slow?ms=N        waits N ms, then answers like /echo
  /chunked          a chunked response of several chunks with a trailer (X-Checksum)
  /big?bytes=N      N bytes of a repeating pattern, with Content-Length
  /close            a response without Content-Length, ended by closing the connection
  /status/N         status N with a small text body (none for 1xx/204/304 and HEAD)
  /cut              announces Content-Length 100000, sends 1000 bytes and closes
  /pid              this process's pid (text)
  /cache?...        a cacheable JSON document {n, method, auth, accept, pad}; n counts how
                    often the upstream answered this exact target (server.cache_served).
                    Query: cc= (Cache-Control), cdn= (CDN-Cache-Control), vary=, etag=
                    (answers 304 to a matching
                    If-None-Match unless changed= is present), size= (padding), ms= (slow),
                    fail_after=N (503 after N answers), chunked= (no Content-Length);
                    server.cache_conditional[target] is the last If-None-Match received
Speaks HTTP/1.1 keep-alive (correct Content-Length everywhere unless the point is not to).
Only the Python 3.11 standard library.
"""

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = "127.0.0.1"


def pattern_bytes(n):
    """Deterministic content of length n (so a test can hash what it expects)."""
    unit = bytes(range(256)) * 64  # 16 KiB
    reps, rest = divmod(n, len(unit))
    return unit * reps + unit[:rest]


def chunked_body_parts():
    return [b"alpha-", b"beta-" * 100, b"gamma-" * 1000, b"omega"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-test-upstream/1"
    timeout = 60  # a socket that says nothing for a minute is closed
    disable_nagle_algorithm = True  # head and body are separate writes: no 40 ms ACK waits

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        self.conn_id = self.server.note_connection()

    # -- helpers --------------------------------------------------------------------

    def _read_body(self):
        """(body bytes, trailers list, te value). Decodes chunked framing itself."""
        te = self.headers.get("Transfer-Encoding")
        if te is not None and te.strip().lower() == "chunked":
            body, trailers = bytearray(), []
            while True:
                line = self.rfile.readline(70000)
                if not line.endswith(b"\r\n"):
                    raise ValueError(f"bad chunk size line {line[:40]!r}")
                size = int(line[:-2].split(b";", 1)[0], 16)
                if size == 0:
                    break
                data = self.rfile.read(size)
                if len(data) != size or self.rfile.read(2) != b"\r\n":
                    raise ValueError("truncated chunk")
                body += data
            while True:
                line = self.rfile.readline(70000)
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
                trailers.append([name, value.strip()])
            return bytes(body), trailers, te
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        if len(data) != n:
            raise ValueError("truncated body")
        return data, [], te

    def _send(self, status, body=b"", ctype="application/octet-stream", extra=(), length=True):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _echo(self, body, trailers, te):
        doc = {
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("latin-1") if len(body) <= 65536 else None,
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "trailers": trailers,
            "te": te,
            "conn": self.conn_id,
        }
        extra = []
        if "hop=1" in self.path:  # response hop-by-hop fields the agent must not relay
            extra = [("Connection", "X-Up-Hop"), ("X-Up-Hop", "1"), ("Keep-Alive", "timeout=5"),
                     ("X-Up-End-To-End", "kept")]
        self._send(200, json.dumps(doc).encode(), "application/json", extra=extra)

    # -- dispatch -------------------------------------------------------------------

    def _handle(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        self.server.note_request(self.command, self.path, self.headers, self.conn_id)
        try:
            body, trailers, te = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send(400, b"bad body\n", "text/plain")
            return
        p = u.path
        if p.startswith("/echo"):
            self._echo(body, trailers, te)
        elif p == "/slow":
            time.sleep(int(q.get("ms", ["100"])[0]) / 1000.0)
            self._echo(body, trailers, te)
        elif p == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum")
            self.end_headers()
            if self.command == "HEAD":
                return
            whole = b"".join(chunked_body_parts())
            for part in chunked_body_parts():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\nX-Checksum: %s\r\n\r\n" % hashlib.sha256(whole).hexdigest().encode())
        elif p == "/big":
            self._send(200, pattern_bytes(int(q.get("bytes", ["1024"])[0])))
        elif p == "/close":
            self.close_connection = True
            self._send(200, b"until-close body " * 100, "text/plain",
                       extra=[("Connection", "close")], length=False)
        elif p.startswith("/status/"):
            status = int(p.rsplit("/", 1)[1])
            if status < 200 or status in (204, 304):
                self.send_response(status)
                self.end_headers()
            else:
                extra = [("Location", "/echo")] if 300 <= status < 400 else []
                self._send(status, b"status %d\n" % status, "text/plain", extra=extra)
        elif p == "/cut":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.wfile.flush()
            self.close_connection = True
        elif p == "/cache":
            # cacheable answers for the response-cache tests: headers from the query, and a
            # count of how often the upstream itself served this exact target
            if "ms" in q:  # a slow origin, for miss-coalescing tests
                time.sleep(int(q["ms"][0]) / 1000.0)
            with self.server.lock:
                n = self.server.cache_served[self.path] = self.server.cache_served.get(self.path, 0) + 1
            if "fail_after" in q and n > int(q["fail_after"][0]):  # the origin breaks
                self._send(503, b"origin down\n", "text/plain")
                return
            extra = [("Cache-Control", q["cc"][0])] if "cc" in q else []
            extra += [("Vary", q["vary"][0])] if "vary" in q else []
            extra += [("CDN-Cache-Control", q["cdn"][0])] if "cdn" in q else []
            etag = '"%s"' % q["etag"][0] if "etag" in q else None
            extra += [("ETag", etag)] if etag else []
            with self.server.lock:
                self.server.cache_conditional[self.path] = self.headers.get("If-None-Match")
            if etag and self.headers.get("If-None-Match") == etag and "changed" not in q:
                # a validated revalidation: 304 with the fields a 304 carries (RFC 9110 §15.4.5)
                self.send_response(304)
                for k, v in extra:
                    self.send_header(k, v)
                self.send_header("X-Origin-Revalidated", str(n))
                self.end_headers()
                return
            doc = {"n": n, "method": self.command, "auth": self.headers.get("Authorization"),
                   "accept": self.headers.get("Accept"),
                   "pad": "x" * int(q.get("size", ["0"])[0])}
            body = json.dumps(doc).encode()
            if "chunked" in q:  # the same document in three chunks, no Content-Length
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                for k, v in extra:
                    self.send_header(k, v)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if self.command != "HEAD":
                    third = len(body) // 3 + 1
                    for i in range(0, len(body), third):
                        part = body[i:i + third]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                return
            self._send(200, body, "application/json", extra=extra)
        elif p == "/pid":
            self._send(200, str(os.getpid()).encode(), "text/plain")
        else:
            self._send(404, b"no such fixture path\n", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr):
        super().__init__(addr, Handler)
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []  # (method, path, headers, conn)
        self.cache_served = {}  # target → times /cache answered it
        self.cache_conditional = {}  # target → the If-None-Match of its last request

    def handle_error(self, request, client_address):
        # a peer that went away (the agent cut or timed out the connection) is expected
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def note_connection(self):
        with self.lock:
            self.connections += 1
            return self.connections

    def note_request(self, method, path, headers, conn):
        with self.lock:
            self.requests.append((method, path, [[k, v] for k, v in headers.items()], conn))


class Upstream:
    """The fixture in-process: start(), port, connections, requests, paths(), stop()."""

    def __init__(self, port=0):
        self.server = Server((LOOPBACK, port))
        self.port = self.server.server_address[1]
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=f"upstream-{self.port}", daemon=True)
        self.thread.start()
        return self

    @property
    def connections(self):
        with self.server.lock:
            return self.server.connections

    def paths(self):
        with self.server.lock:
            return [r[1] for r in self.server.requests]

    def requests(self):
        with self.server.lock:
            return list(self.server.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)


def main(argv=None):
    ap = argparse.ArgumentParser(description="sluice integration-test upstream")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--term-file", help="on SIGTERM write 'TERM <pid>' here, then exit 0")
    args = ap.parse_args(argv)

    def on_term(signum, frame):
        if args.term_file:
            with open(args.term_file, "a") as f:
                f.write(f"TERM {os.getpid()}\n")
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    srv = Server((LOOPBACK, args.port))
    srv.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    sys.exit(main())
