"""The sluice dashboard end to end in a real terminal (tmux), against a real control plane,
real agents and a real Redis: the Fleet screen read with capture-pane, a replica drained by
keys until it shows `drained`, a limit changed in the Limits form until every agent runs
it, and a clean quit (the process exits 0 and the terminal is given back).

tmux runs on its own socket (-L) per test run, and is killed by its server PID."""

import json
import os
import shutil
import subprocess
import time

import harness
from harness import LOOPBACK, Program, free_port, run_program, wait_until

import agent_fixture
from agent_fixture import wait_binary
from upstream import Upstream

TEST_TIMEOUT_S = 120
RUN = os.urandom(3).hex()
TOKEN = "it-tui-" + os.urandom(6).hex()
SERVICE = "tui-svc-" + RUN
SOCKET = "sluice-it-" + RUN


class S:
    redis = None
    up = None
    agents = []
    server = None
    key = None
    port = None


class Sidecar(agent_fixture.Agent):
    token = TOKEN
    id_prefix = "tui-side"
    run = RUN
    label_prefix = "tui-sidecar"


def tmux(*args, check=True):
    cp = subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, timeout=10)
    if check and cp.returncode != 0:
        raise AssertionError(f"tmux {args}: {cp.stderr.decode()}")
    return cp.stdout.decode("utf-8", "replace")


def screen():
    return tmux("capture-pane", "-p", "-t", "tui")


def keys(*k):
    tmux("send-keys", "-t", "tui", *k)


def setup_module():
    assert shutil.which("tmux"), "tmux is missing: scripts/install-deps installs it"
    wait_binary()
    wait_binary("sluice-server")
    wait_binary("sluice")
    S.redis = harness.RedisServer().start()
    S.up = Upstream().start()
    # short ids: the REPLICA column is 14 wide at 80 columns
    S.agents = [Sidecar(S.up.port, redis=S.redis, service=SERVICE, workers=1,
                        agent_id=f"t{i}-{RUN}").start() for i in range(2)]
    cp = run_program("sluice-server", ["keys", "create", "--role", "operator", "--redis", S.redis.url])
    assert cp.returncode == 0, cp.stderr
    S.key = cp.stdout.decode().splitlines()[0]
    S.port = free_port()
    S.server = Program("sluice-server", ["--listen", f"{LOOPBACK}:{S.port}", "--redis", S.redis.url,
                                         "--agent-token", TOKEN, "--poll-ms", "300"],
                       port=S.port, label="tui-server")
    agent_fixture.retry_exec(S.server.start, "start sluice-server", name="sluice-server")
    S.server.wait_http_ready("/healthz", timeout_s=10)
    exe = str(harness.bin_path("sluice"))
    env = f"TERM=xterm-256color SLUICE_SERVER=http://{LOOPBACK}:{S.port} SLUICE_TOKEN={S.key}"
    tmux("-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "120", "-y", "30",
         f"env {env} {exe}; echo SLUICE-EXIT=$?; sleep 60")


def teardown_module():
    try:
        pid = tmux("display-message", "-p", "#{pid}", check=False).strip()
        tmux("kill-server", check=False)
        if pid.isdigit():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
    finally:  # the programs and Redis are the harness's: run.py stops them after the module
        if S.up:
            S.up.stop()


def test_fleet_screen_shows_every_replica_live():
    wait_until(lambda: all(a.id in screen() for a in S.agents) and "live" in screen(), 15,
               "both replicas on the Fleet screen")
    s = screen()
    assert "REPLICA" in s and "STATE" in s and "REQ/S" in s, s
    assert s.count("serving") >= 2, s


def test_drain_by_keys_reaches_drained():
    victim = sorted(a.id for a in S.agents)[0]
    keys("g")  # the first row: the lowest id
    keys("d")
    wait_until(lambda: "Drain " in screen(), 5, "the confirm dialog")
    keys(victim, "Enter")
    wait_until(lambda: "drain " in screen() and "done" in screen(), 10, "the drain done")

    def drained():
        for line in screen().splitlines():
            if line.startswith(victim) and " drained" in line:
                return True
        return False

    wait_until(drained, 15, "the replica shown drained")
    r = harness.http("POST", f"http://{LOOPBACK}:{S.port}/v1/replicas/{victim}/undrain",
                     {"Authorization": f"Bearer {S.key}"})
    assert r.status == 200


def test_limit_changed_in_the_form_converges():
    name = f"tui-lim-{RUN}"
    pol = {"scope": "sidecar", "match": {"path_prefix": "/nothing"}, "key": "ip",
           "algorithm": "token_bucket", "limit": 100, "window_ms": 60000, "burst": 10, "store": "local"}
    r = harness.http("PUT", f"http://{LOOPBACK}:{S.port}/v1/limits/{name}",
                     {"Authorization": f"Bearer {S.key}"}, pol)
    assert r.status == 201, r.json()
    keys("2")
    wait_until(lambda: name in screen(), 10, "the policy on the Limits screen")
    keys("/", name, "Enter")  # only that policy: the selection is on it
    keys("e")
    wait_until(lambda: "edit limit" in screen(), 5, "the form")
    keys("BSpace", "BSpace", "BSpace", "250")
    wait_until(lambda: "limit 100 → 250" in screen(), 5, "the preview")
    keys("Enter")
    wait_until(lambda: json.loads(S.redis.cmd("HGET", "sluice:policies", name))["limit"] == 250, 10,
               "the limit written")

    def converged():
        s = screen()
        return any(name in line and "2/2 @v" in line for line in s.splitlines())

    wait_until(converged, 15, "both agents on the new version, on screen")
    for a in S.agents:
        assert any(p["name"] == name and p["limit"] == 250 for p in a.admin("GET", "/v1/policies").json()["policies"])


def test_quit_restores_the_terminal():
    keys("q")
    wait_until(lambda: "SLUICE-EXIT=0" in screen(), 10, "sluice to exit 0")
    s = screen()
    assert "REPLICA" not in s, s  # the alternate screen is gone: the shell's output is back
