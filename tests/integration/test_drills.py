"""Chaos drills run by sluice-server (server/drills.h, docs/drills.md) against real agents and
Redis: a drill applies its fault to no more replicas than its blast radius allows, checks
the steady state, reverts at the end and writes a journal with a verdict; abort-all stops a
running drill at once and its fault is gone; the CLI starts and lists drills; a crash
kills a replica's --exec child (in a loop with every_s) and the agent restarts it, and falls
back to a reset fault on a replica without one."""

import json
import os
import sys
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
SERVICE_EXEC = "dr-exec-" + RUN
UPSTREAM_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upstream.py")


class S:
    redis = up = server = key = port = tmp = exec_agent = None
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


def crash_drill(name, service, duration_s, every_s=None):
    step = {"at_s": 0, "duration_s": duration_s, "target": "random:1", "action": "crash"}
    if every_s:
        step["every_s"] = every_s
    return {"name": name, "description": "a crash", "service": service,
            "hypothesis": {"min_availability": 0.0, "max_p99_ms": 10000},
            "abort": {"max_error_ratio": 1.0}, "blast_radius": {"max_replicas": 1}, "settle_s": 1,
            "steps": [step]}


def setup_module():
    wait_binary()
    wait_binary("sluice-server")
    S.redis = harness.RedisServer().start()
    S.up = Upstream().start()
    S.agents = [Sidecar(S.up.port, redis=S.redis, service=SERVICE, workers=1).start() for _ in range(2)]
    app_port = free_port()  # the supervised replica: upstream.py started by its sidecar
    S.exec_agent = Sidecar(app_port, "--exec", f"exec {sys.executable} {UPSTREAM_PY} --port {app_port}",
                           redis=S.redis, service=SERVICE_EXEC, workers=1).start()
    S.tmp = tempfile.TemporaryDirectory()
    files = [drill(f"short-{RUN}", 3), drill(f"long-{RUN}", 120),
             crash_drill(f"crash-loop-{RUN}", SERVICE_EXEC, 3, every_s=1),
             crash_drill(f"crash-reset-{RUN}", SERVICE, 2)]
    for d in files:
        with open(os.path.join(S.tmp.name, d["name"] + ".json"), "w") as f:
            json.dump(d, f)
    cp = run_program("sluice-server", ["keys", "create", "--role", "operator", "--redis", S.redis.url])
    S.key = cp.stdout.decode().splitlines()[0]
    S.port = free_port()
    S.server = Program("sluice-server", ["--listen", f"{LOOPBACK}:{S.port}", "--redis", S.redis.url,
                                         "--agent-token", TOKEN, "--poll-ms", "300", "--drills", S.tmp.name],
                       port=S.port, label="dr-server")
    agent_fixture.retry_exec(S.server.start, "start sluice-server", name="sluice-server")
    S.server.wait_http_ready("/healthz")
    wait_until(lambda: len(fleet_ids()) == 2 and len(fleet_ids(SERVICE_EXEC)) == 1, 10,
               "every agent in the fleet view")


def teardown_module():
    # the programs and Redis are the harness's: run.py stops them (by PID) after the module;
    # the upstream runs in this process
    if S.up:
        S.up.stop()
    if S.tmp:
        S.tmp.cleanup()


def call(method, path, body=None):
    return harness.http(method, f"http://{LOOPBACK}:{S.port}{path}", {"Authorization": f"Bearer {S.key}"}, body)


def fleet_ids(service=SERVICE):
    for svc in call("GET", "/v1/fleet").json()["services"]:
        if svc["name"] == service:
            return [r["id"] for r in svc["replicas"] if r["up"]]
    return []


def faulted():
    return [a.id for a in S.agents if a.admin("GET", "/v1/faults").json().get("faults")]


def test_a_drill_respects_its_blast_radius_reverts_and_passes():
    name = f"short-{RUN}"
    lst = call("GET", "/v1/drills").json()
    assert {d["name"] for d in lst["drills"]} == {name, f"long-{RUN}", f"crash-loop-{RUN}",
                                                 f"crash-reset-{RUN}"}, lst
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


def verdict_of(run):
    return wait_until(lambda: (lambda j: j.get("verdict") and j)(call("GET", f"/v1/drills/runs/{run}").json()),
                      20, "the drill's verdict")


def crash_reports(journal):
    return [rep for e in journal["events"] if e["kind"] in ("step", "crash")
            for rep in e.get("replicas", []) if "how" in rep]


def test_crash_kills_the_exec_child_in_a_loop_and_the_agent_restarts_it():
    a = S.exec_agent

    def child():
        ex = a.admin("GET", "/v1/stats").json()["exec"]
        return ex if ex["pid"] and a.get("/pid", timeout_s=2).status == 200 else None

    before = wait_until(child, 10, "the supervised replica serving")
    r = call("POST", f"/v1/drills/crash-loop-{RUN}/start")
    assert r.status == 202, r.json()
    journal = verdict_of(r.json()["run"])
    assert journal["verdict"] == "passed", journal
    killed = [rep for rep in crash_reports(journal) if rep["how"] == "killed"]
    # killed at 0 s, then every second while the child is up (it restarts after 200, 400 ms)
    assert len(killed) >= 2, crash_reports(journal)
    pids = [rep["pid"] for rep in killed]
    assert len(set(pids)) == len(pids) and before["pid"] == pids[0], (before, pids)
    after = wait_until(lambda: (lambda ex: ex if ex and ex["restarts"] >= before["restarts"] + len(killed)
                                and ex["pid"] not in pids else None)(child()), 15,
                       "the last killed replica restarted and serving")
    assert after["pid"] not in pids, after


def test_crash_without_an_exec_child_is_a_reset_fault_reverted_at_the_end():
    r = call("POST", f"/v1/drills/crash-reset-{RUN}/start")
    assert r.status == 202, r.json()
    wait_until(lambda: len(faulted()) == 1, 5, "the reset fault on one replica")
    journal = verdict_of(r.json()["run"])
    reports = crash_reports(journal)
    assert len(reports) == 1 and reports[0]["how"].startswith("reset fault"), reports
    assert faulted() == [], "the fault is reverted at the end"
