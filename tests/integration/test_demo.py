"""`make demo`'s script end to end, headless (DEMO_NO_TUI=1) on its own ports and folder:
the whole fleet comes up, traffic flows through the gateway from the load generator, the
control plane sees every replica, a drill can run, and stopping the script (as quitting the
dashboard does) leaves no process behind."""

import os
import signal
import subprocess
import tempfile
import time

import harness
from harness import LOOPBACK, wait_until

from agent_fixture import wait_binary

TEST_TIMEOUT_S = 150
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def children_of(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def descendants_of(pid):
    """The script's children and theirs (the replicas run under their sidecars' --exec)."""
    found = []
    for child in children_of(pid):
        found += [child] + descendants_of(child)
    return found


def test_demo_brings_up_the_fleet_and_stops_everything():
    for b in ("sluice-agent", "sluice-shortener", "sluice-server", "sluice-worker", "sluice",
              "sluice-loadgen"):
        wait_binary(b)
    off = 500 + (os.getpid() % 40) * 10
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, DEMO_NO_TUI="1", SLUICE_DEMO_BASE=str(off), DEMO_DIR=d, DEMO_RATE="30",
                   REPLICAS="2")
        log = open(os.path.join(d, "demo.out"), "w")
        p = subprocess.Popen(["bash", os.path.join(ROOT, "scripts/demo"), str(harness.bin_dir())],
                             cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started = []
        try:
            wait_until(lambda: "sluice demo is up" in open(log.name).read() or p.poll() is not None, 90,
                       "the demo to come up")
            assert p.poll() is None, open(log.name).read()[-2000:]
            started = descendants_of(p.pid)
            # replicas × 2 (sidecar, and the shortener it supervises), Redis, gateway, worker,
            # server, loadgen
            assert len(started) >= 2 * 2 + 5, started
            cp = f"http://{LOOPBACK}:{7700 + off}"
            key = open(os.path.join(d, "viewer-key")).read().strip()

            def fleet_busy():
                doc = harness.http("GET", cp + "/v1/fleet", {"Authorization": f"Bearer {key}"}).json()
                svcs = {s["name"]: s for s in doc["services"]}
                sh = svcs.get("shortener")
                return (sh and sh["totals"]["replicas_up"] == 2 and "edge" in svcs
                        and (svcs["edge"]["totals"]["rps"] or 0) > 0)

            wait_until(fleet_busy, 60, "load through the gateway, seen by the control plane")
            drills = harness.http("GET", cp + "/v1/drills", {"Authorization": f"Bearer {key}"}).json()
            assert len(drills["drills"]) >= 8, drills
        finally:
            os.kill(p.pid, signal.SIGTERM)  # what quitting the dashboard does: the trap
            p.wait(timeout=60)
            log.close()
        deadline = time.monotonic() + 30
        alive = [pid for pid in started if os.path.exists(f"/proc/{pid}")]
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)  # a poll interval while the processes finish their drain
            alive = [pid for pid in started if os.path.exists(f"/proc/{pid}")]
        for pid in alive:  # never leave one behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
        assert alive == [], f"left running: {alive}"
        assert "stopped everything" in open(log.name).read()
