"""Chaos drills run by sluice-server (server/drills.h, docs/drills.md) against real agents and
Redis: a drill applies its fault to no more replicas than its blast radius allows, checks
the steady state, reverts at the end and writes a journal with a verdict; abort-all stops a
running drill at once and its fault is gone; the CLI starts and lists drills."""

import json
import os
import tempfile
import time

import harness
from harness import LOOPBACK, Program, free_port, run_program, wait_until

import agent_fixture
from agent_fixture import wait_binary
from upstream import Upstream

TEST_TIMEOUT_S = 120
RUN = os.urandom(3).hex()
TOKEN = "it-dr-" + os.urandom(6).hex()
SERVICE = "dr-svc-" + RUN


class S:
    redis = up = server = key = port = tmp = None
    agents = []


class Sidecar(agent_fixture.Agent):
    token = TOKEN
    id_prefix = "dr-side"
    run = RUN
    label_prefix = "dr-sidecar"


def drill(name, duration_s, settle_s=1):
    return {"name": name, "description": "a delay on one replica", "service": SERVICE,
            "hypothesis": {"min_availability": 0.5, "max_p99_ms": 10000},
            "abort": {"max_error_ratio": 0.9}, "blast_radius": {"max_replicas": 1},
            "settle_s": settle_s,
            "steps": [{"at_s": 0, "duration_s": duration_s, "target": "percent:100", "action": "fault",
                       "fault": {"kind": "delay", "ms": 20, "percent": 100}}]}


def setup_module():
    wait_binary()
    wait_binary("sluice-server")
    S.redis = harness.RedisServer().start()
    S.up = Upstream().start()
    S.agents = [Sidecar(S.up.port, redis=S.redis, service=SERVICE, workers=1).start() for _ in range(2)]
    S.tmp = tempfile.TemporaryDirectory()
    for name, dur in ((f"short-{RUN}", 3), (f"long-{RUN}", 120)):
        with open(os.path.join(S.tmp.name, name + ".json"), "w") as f:
            json.dump(drill(name, dur), f)
    cp = run_program("sluice-server", ["keys", "create", "--role", "operator", "--redis", S.redis.url])
    S.key = cp.stdout.decode().splitlines()[0]
    S.port = free_port()
    S.server = Program("sluice-server", ["--listen", f"{LOOPBACK}:{S.port}", "--redis", S.redis.url,
                                         "--agent-token", TOKEN, "--poll-ms", "300", "--drills", S.tmp.name],
                       port=S.port, label="dr-server")
    agent_fixture.retry_exec(S.server.start, "start sluice-server", name="sluice-server")
    S.server.wait_http_ready("/healthz")
    wait_until(lambda: len(fleet_ids()) == 2, 10, "both agents in the fleet view")


def teardown_module():
    # the programs and Redis are the harness's: run.py stops them (by PID) after the module;
    # the upstream runs in this process
    if S.up:
        S.up.stop()
    if S.tmp:
        S.tmp.cleanup()


def call(method, path, body=None):
    return harness.http(method, f"http://{LOOPBACK}:{S.port}{path}", {"Authorization": f"Bearer {S.key}"}, body)


def fleet_ids():
    for svc in call("GET", "/v1/fleet").json()["services"]:
        if svc["name"] == SERVICE:
            return [r["id"] for r in svc["replicas"] if r["up"]]
    return []


def faulted():
    return [a.id for a in S.agents if a.admin("GET", "/v1/faults").json().get("faults")]


def test_a_drill_respects_its_blast_radius_reverts_and_passes():
    name = f"short-{RUN}"
    lst = call("GET", "/v1/drills").json()
    assert {d["name"] for d in lst["drills"]} == {name, f"long-{RUN}"}, lst
    r = call("POST", f"/v1/drills/{name}/start")
    assert r.status == 202 and r.headers["location"].startswith("/v1/drills/runs/"), r.json()
    run = r.json()["run"]
    assert call("POST", f"/v1/drills/{name}/start").status == 409  # one run at a time
    wait_until(lambda: len(faulted()) == 1, 5, "the fault on exactly one replica (percent:100, radius 1)")
    journal = wait_until(lambda: (lambda j: j.get("verdict") and j)(call("GET", f"/v1/drills/runs/{run}").json()),
                         20, "the drill's verdict")
    assert journal["verdict"] == "passed", journal
    kinds = [e["kind"] for e in journal["events"]]
    assert kinds[0] == "start" and "step" in kinds and "revert" in kinds and kinds[-1] == "end", kinds
    assert any(e["kind"] == "check" and e["steady"] for e in journal["events"])
    assert faulted() == [], "the fault is reverted at the end"
    audit = call("GET", "/v1/audit?limit=5").json()["records"]
    assert any(a["action"] == "drills.start" and a["target"] == name for a in audit)


def test_abort_all_stops_a_running_drill_and_reverts_its_fault():
    name = f"long-{RUN}"
    cp = run_program("sluice", ["drills", "start", name, "--server", f"http://{LOOPBACK}:{S.port}",
                                "--token", S.key])
    assert cp.returncode == 0, cp.stderr
    wait_until(lambda: len(faulted()) == 1, 5, "the long drill's fault")
    t0 = time.monotonic()
    r = call("POST", "/v1/drills/abort-all")
    assert r.status == 200 and r.json()["aborted"] == 1, r.json()
    wait_until(lambda: faulted() == [], 5, "every fault reverted")
    assert time.monotonic() - t0 < 5
    runs = call("GET", "/v1/drills").json()["runs"]
    mine = [x for x in runs if x["drill"] == name]
    wait_until(lambda: (lambda rs: rs and rs[0]["verdict"] == "aborted")(
        [x for x in call("GET", "/v1/drills").json()["runs"] if x["drill"] == name]), 5, "the verdict aborted")
    assert mine
    cp = run_program("sluice", ["drills", "list", "-o", "json", "--server", f"http://{LOOPBACK}:{S.port}",
                                "--token", S.key])
    assert cp.returncode == 0 and name in cp.stdout.decode(), cp
