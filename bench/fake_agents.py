#!/usr/bin/env python3
"""bench/fake_agents.py — many simulated sidecar agents in one process (bench/controlplane.sh).

    fake_agents.py --template STATS.json --redis 127.0.0.1:PORT [--count 1000]
                   [--services 20] [--ports-out FILE] [--status FILE]

Listens on COUNT loopback admin ports (each bound to port 0: the kernel picks free ones,
written one per line to --ports-out) and answers GET /v1/stats on each (HTTP/1.1,
keep-alive, Content-Length; anything else is a 404) with a real agent's stats document,
--template (bench/controlplane.sh captures it from a sluice-agent). Registers every agent
in Redis the way agent/control.c does: every second SET sluice:agent:{ID} <json> EX 5 and
SADD sluice:agents ID (one pipelined batch), removed again on SIGTERM/SIGINT. Prints
"ready N" once listening and registered.

What an agent serves. Agent i has id "fake-NNNN", service "svc-(i mod --services)" and
one of four traffic levels (i mod 4 → 1x, 2x, 3x, 5x). Its counters grow with time, in
100 ms ticks since the start, consistently: per route, every tick adds d 2xx requests
(d = 1, 2 or 4 by route, times the level) and every 20th tick one 5xx (also an
upstream error); requests, status counts, bytes in/out (the template's per-request
average), and the latency histogram (the added observations follow the template route's
own bucket distribution, 5xx go to its maximum bucket, so count == sum of buckets, sum
grows by the buckets' lower bounds; no new buckets: the body keeps its size) all move
together; "totals" is always the sum of the routes (histograms merged). "uptime_s" is the
template's plus the seconds since the start. Everything else (rates, percentiles, limiter,
cache) is the template's as captured. So the server sees monotone counters and computes
real windows (rps, error ratio, percentiles from histogram differences).

One body is rendered per (tick, traffic level) and shared by the agents of that level;
per request only the id and the service are spliced in, so serving stays cheap.

--status FILE is rewritten every second with {"conns", "open", "requests", "not_found"}
(connections accepted, open now, stats answered, other requests), so a benchmark can see
whether its client kept the connections alive.
"""
import argparse
import asyncio
import copy
import json
import os
import random
import signal
import socket
import sys
import time

TICK_S = 0.1
LEVELS = (1, 2, 3, 5)
ROUTE_RATES = (4, 2, 1)  # 2xx requests per tick, by route index (cycled), at level 1x
ERROR_EVERY_TICKS = 20
REGISTRY_EVERY_S = 1.0
REGISTRY_TTL_S = 5


def bucket_lower(index):
    """The lower bound (µs) of a loglin-32-2^27 bucket (shared/histogram.h); the overflow
    bucket (736) gives 2^27."""
    if index < 64:
        return index
    shift = (index >> 5) - 1
    return (32 + (index & 31)) << shift


class Route:
    """One route of the template and the counters it adds per tick."""

    def __init__(self, tr, rate):
        self.tr = tr
        h = tr["latency_histogram"]
        self.base_buckets = {int(i): int(c) for i, c in h["buckets"]}
        self.base = {k: int(tr[k]) for k in ("requests", "bytes_in", "bytes_out", "upstream_errors")}
        self.base_status = {k: int(v) for k, v in tr["status"].items()}
        self.base_sum = int(h["sum"])
        req = max(1, self.base["requests"])
        self.avg_in = self.base["bytes_in"] // req
        self.avg_out = self.base["bytes_out"] // req
        # The n-th added 2xx observation goes to expanded[order[n % len]]: after n of them
        # every template observation's bucket got n // len more, plus one for the first
        # n % len of order (a fixed shuffle); the template's distribution, in closed form.
        self.expanded = [i for i, c in sorted(self.base_buckets.items()) for _ in range(c)] or [64]
        self.order = list(range(len(self.expanded)))
        random.Random(len(self.expanded)).shuffle(self.order)
        self.prefix_sum = [0]
        for k in self.order:
            self.prefix_sum.append(self.prefix_sum[-1] + bucket_lower(self.expanded[k]))
        self.rate = rate
        self.err_bucket = max(self.base_buckets) if self.base_buckets else 64
        self.err_value = max(int(h.get("max", 0)), bucket_lower(self.err_bucket))

    def at(self, tick, level):
        """The route's counters after tick ticks at this level (a fresh dict)."""
        ok = tick * self.rate * level
        err = tick // ERROR_EVERY_TICKS
        tr = copy.copy(self.tr)
        tr["requests"] = self.base["requests"] + ok + err
        status = dict(self.base_status)
        status["2xx"] = status.get("2xx", 0) + ok
        status["5xx"] = status.get("5xx", 0) + err
        tr["status"] = status
        tr["bytes_in"] = self.base["bytes_in"] + (ok + err) * self.avg_in
        tr["bytes_out"] = self.base["bytes_out"] + (ok + err) * self.avg_out
        tr["upstream_errors"] = self.base["upstream_errors"] + err
        buckets = dict(self.base_buckets)
        full, part = divmod(ok, len(self.expanded))
        if full:
            for b, c in self.base_buckets.items():
                buckets[b] += c * full
        for k in self.order[:part]:
            buckets[self.expanded[k]] = buckets.get(self.expanded[k], 0) + 1
        if err:
            buckets[self.err_bucket] = buckets.get(self.err_bucket, 0) + err
        h = dict(self.tr["latency_histogram"])
        h["buckets"] = [[b, c] for b, c in sorted(buckets.items())]
        h["count"] = sum(buckets.values())
        h["sum"] = (self.base_sum + full * self.prefix_sum[-1] + self.prefix_sum[part] +
                    err * self.err_value)
        h["max"] = max(int(h.get("max", 0)), self.err_value if err else 0)
        tr["latency_histogram"] = h
        return tr


def merge_totals(template_totals, routes):
    t = copy.copy(template_totals)
    for k in ("requests", "bytes_in", "bytes_out", "upstream_errors"):
        t[k] = sum(r[k] for r in routes)
    t["status"] = {k: sum(r["status"].get(k, 0) for r in routes) for k in template_totals["status"]}
    buckets = {}
    for r in routes:
        for b, c in r["latency_histogram"]["buckets"]:
            buckets[b] = buckets.get(b, 0) + c
    h = dict(template_totals["latency_histogram"])
    hs = [r["latency_histogram"] for r in routes]
    h["buckets"] = [[b, c] for b, c in sorted(buckets.items())]
    h["count"] = sum(buckets.values())
    h["sum"] = sum(x["sum"] for x in hs)
    h["min"] = min(x["min"] for x in hs) if hs else 0
    h["max"] = max(x["max"] for x in hs) if hs else 0
    t["latency_histogram"] = h
    return t


class Bodies:
    """The stats body of every (tick, level), rendered once and split around id/service."""

    ID_MARK, SVC_MARK = "\u0001ID\u0001", "\u0001SVC\u0001"

    def __init__(self, template):
        self.t = template
        self.routes = [Route(r, ROUTE_RATES[i % len(ROUTE_RATES)])
                       for i, r in enumerate(template.get("routes", []))]
        self.base_uptime = int(template.get("uptime_s", 0))
        self.t0 = time.monotonic()
        self.cache = {}  # level -> (tick, (prefix, middle, suffix))

    def parts(self, level):
        tick = int((time.monotonic() - self.t0) / TICK_S)
        hit = self.cache.get(level)
        if hit and hit[0] == tick:
            return hit[1]
        doc = dict(self.t)
        doc["id"], doc["service"] = self.ID_MARK, self.SVC_MARK
        doc["uptime_s"] = self.base_uptime + int(tick * TICK_S)
        routes = [r.at(tick, level) for r in self.routes]
        if routes:
            doc["routes"] = routes
            if "totals" in self.t:
                doc["totals"] = merge_totals(self.t["totals"], routes)
        text = json.dumps(doc, separators=(",", ":"))
        a, rest = text.split(json.dumps(self.ID_MARK), 1)
        b, c = rest.split(json.dumps(self.SVC_MARK), 1)
        parts = (a.encode(), b.encode(), c.encode())
        self.cache[level] = (tick, parts)
        return parts


class Counters:
    conns = open = requests = not_found = 0


class Agent:
    __slots__ = ("id", "service", "level", "port", "id_json", "svc_json")

    def __init__(self, i, services, port):
        self.id = "fake-%04d" % i
        self.service = "svc-%d" % (i % services)
        self.level = LEVELS[i % len(LEVELS)]
        self.port = port
        self.id_json = json.dumps(self.id).encode()
        self.svc_json = json.dumps(self.service).encode()


NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
             b"Content-Length: 21\r\n\r\n{\"error\":\"not found\"}")


class AdminProtocol(asyncio.Protocol):
    __slots__ = ("agent", "bodies", "transport", "buf")

    def __init__(self, agent, bodies):
        self.agent, self.bodies, self.transport, self.buf = agent, bodies, None, b""

    def connection_made(self, transport):
        self.transport = transport
        Counters.conns += 1
        Counters.open += 1

    def connection_lost(self, exc):
        Counters.open -= 1

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head, buf = buf[:end], buf[end + 4:]
            if not self.answer(head):
                self.transport.close()
                self.buf = b""
                return
        if len(buf) > 65536:
            self.transport.close()
            buf = b""
        self.buf = buf

    def answer(self, head):
        line, _, rest = head.partition(b"\r\n")
        parts = line.split(b" ")
        keep = b"connection: close" not in rest.lower() and parts[-1] != b"HTTP/1.0"
        if len(parts) == 3 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/v1/stats":
            a, b, c = self.bodies.parts(self.agent.level)
            body = b"".join((a, self.agent.id_json, b, self.agent.svc_json, c))
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            Counters.requests += 1
        else:
            self.transport.write(NOT_FOUND)
            Counters.not_found += 1
        return keep


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Registry:
    """A tiny pipelined RESP client: each batch is written at once and its replies (all
    one-line: +OK, :n, -ERR) counted off."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None
        self.errors = 0

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def batch(self, commands):
        self.writer.write(b"".join(commands))
        await self.writer.drain()
        need, data = len(commands), b""
        while need > 0:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            data += chunk
            lines = data.split(b"\r\n")
            data = lines.pop()
            for ln in lines:
                if ln.startswith(b"-"):
                    self.errors += 1
                    print("fake_agents: redis: %s" % ln.decode(errors="replace"), file=sys.stderr)
            need -= len(lines)


def registration(agent, started_at):
    addr = "127.0.0.1:%d" % agent.port
    # The fake agents serve only the admin API: "listen" names the same address.
    return json.dumps({"id": agent.id, "role": "sidecar", "service": agent.service,
                       "listen": addr, "admin": addr, "upstream": "127.0.0.1:9",
                       "state": "serving", "weight": 100, "version": "0.1.0",
                       "pid": os.getpid(), "started_at": started_at}, separators=(",", ":"))


def write_status(path):
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"conns": Counters.conns, "open": Counters.open,
                   "requests": Counters.requests, "not_found": Counters.not_found}, f)
    os.replace(tmp, path)


async def main(args):
    with open(args.template) as f:
        template = json.load(f)
    bodies = Bodies(template)
    loop = asyncio.get_running_loop()
    agents, servers = [], []
    for i in range(args.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        s.setblocking(False)
        a = Agent(i, args.services, s.getsockname()[1])
        agents.append(a)
        servers.append(await loop.create_server(lambda a=a: AdminProtocol(a, bodies), sock=s))
    if args.ports_out:
        with open(args.ports_out, "w") as f:
            f.write("".join("%d\n" % a.port for a in agents))

    host, _, port = args.redis.rpartition(":")
    reg = Registry(host or "127.0.0.1", int(port))
    await reg.connect()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    refresh = [resp("SET", "sluice:agent:{%s}" % a.id, registration(a, started), "EX",
                    REGISTRY_TTL_S) for a in agents]
    refresh.append(resp("SADD", "sluice:agents", *[a.id for a in agents]))
    await reg.batch(refresh)
    write_status(args.status)
    print("ready %d" % len(agents), flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), REGISTRY_EVERY_S)
        except asyncio.TimeoutError:
            pass
        if stop.is_set():
            break
        try:
            await reg.batch(refresh)
        except (OSError, ConnectionError) as e:
            print("fake_agents: registry refresh failed: %s" % e, file=sys.stderr)
            try:
                await reg.connect()
            except OSError:
                pass
        write_status(args.status)

    # Leave the registry, then stop listening.
    try:
        await asyncio.wait_for(reg.batch([
            resp("SREM", "sluice:agents", *[a.id for a in agents]),
            resp("DEL", *["sluice:agent:{%s}" % a.id for a in agents])]), 2)
    except (OSError, ConnectionError, asyncio.TimeoutError) as e:
        print("fake_agents: could not leave the registry: %s" % e, file=sys.stderr)
    write_status(args.status)
    for s in servers:
        s.close()
    print("fake_agents: stopped (%d connections accepted, %d stats answered, %d other)" %
          (Counters.conns, Counters.requests, Counters.not_found), file=sys.stderr)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--template", required=True, help="a real agent's /v1/stats body")
    p.add_argument("--redis", required=True, help="HOST:PORT of the registry's Redis")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--services", type=int, default=20)
    p.add_argument("--ports-out", help="write the admin ports here, one a line")
    p.add_argument("--status", help="rewrite this JSON file every second with counters")
    asyncio.run(main(p.parse_args()))
