#!/usr/bin/env python3
"""Run the integration tests: every top-level test_* function of tests/integration/test_*.py,
in file order, each in try/except.

    python3 tests/integration/run.py [-k SUBSTRING]... [-v] [--bin-dir DIR] [FILE...]

A module may define setup_module() and teardown_module(); teardown always runs. A failing
test prints its traceback and the tail of the logs of the processes it started and of those
still running. The last line is exactly `integration: N passed, M failed`; the exit status
is non-zero if anything failed (or nothing was selected).
"""

import argparse
import importlib.util
import os
import signal
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402

DEFAULT_TEST_TIMEOUT_S = 60.0


class TestTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit")


def _on_term(signum, frame):
    # turn SIGTERM into SystemExit so finally blocks and atexit stop the children
    raise SystemExit(128 + signum)


def load_module(path):
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_functions(mod):
    """Top-level test_* functions defined in the module, in file order."""
    out = []
    for name, obj in vars(mod).items():  # dict order == definition order
        if name.startswith("test_") and callable(obj) and getattr(obj, "__module__", None) == mod.__name__:
            out.append((name, obj))
    return out


def print_logs(since_seq):
    """Tails of the logs of processes started since `since_seq`, and of those running."""
    for p in harness.registered():
        if (p.seq or 0) > since_seq or p.running:
            lines = 15 if isinstance(p, harness.Program) else 8
            text = p.log_tail(lines)
            state = "running" if p.running else f"exited {p.exit_code if p.exit_code is not None else p.proc.returncode}"
            print(f"  --- log tail of {p.describe()} ({state}):")
            if text:
                print("\n".join("    " + line for line in text.splitlines()))
            else:
                print("    (empty)")


def run_call(fn, timeout_s):
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", dest="select", action="append", default=[],
                    help="run only tests whose name (or module.name) contains this; repeatable")
    ap.add_argument("-v", action="store_true", help="print timings")
    ap.add_argument("--bin-dir", help="where the sluice binaries are (default $SLUICE_BIN_DIR or build/bin)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    ap.add_argument("files", nargs="*", help="test files (default tests/integration/test_*.py)")
    args = ap.parse_args(argv)

    if args.bin_dir:
        os.environ["SLUICE_BIN_DIR"] = str(Path(args.bin_dir).resolve())
    signal.signal(signal.SIGTERM, _on_term)

    files = [Path(f).resolve() for f in args.files] or sorted(HERE.glob("test_*.py"))
    passed = failed = 0
    t_suite = time.monotonic()
    print(f"integration: binaries from {harness.bin_dir()}", flush=True)

    for path in files:
        try:
            mod = load_module(path)
        except Exception:  # noqa: BLE001
            print(f"FAIL {path.name} (import)")
            traceback.print_exc(file=sys.stdout)
            failed += 1
            continue
        tests = test_functions(mod)
        if args.select:
            tests = [(n, f) for n, f in tests
                     if any(s in n or s in f"{mod.__name__}.{n}" for s in args.select)]
        if not tests:
            continue
        timeout_s = float(getattr(mod, "TEST_TIMEOUT_S", DEFAULT_TEST_TIMEOUT_S))
        print(f"== {path.name}: {len(tests)} test(s)", flush=True)

        seq0 = len(harness.registered())
        setup_ok = True
        if hasattr(mod, "setup_module"):
            t0 = time.monotonic()
            try:
                run_call(mod.setup_module, timeout_s)
                if args.v:
                    print(f"   setup_module ({time.monotonic() - t0:.2f}s)")
            except Exception:  # noqa: BLE001
                setup_ok = False
                print("FAIL setup_module")
                traceback.print_exc(file=sys.stdout)
                print_logs(seq0)
        try:
            for name, fn in tests:
                if not setup_ok:
                    print(f"FAIL {name}")
                    print("  (setup_module failed)")
                    failed += 1
                    continue
                seq = len(harness.registered())
                t0 = time.monotonic()
                try:
                    run_call(fn, timeout_s)
                except Exception:  # noqa: BLE001
                    failed += 1
                    print(f"FAIL {name}" + (f" ({time.monotonic() - t0:.2f}s)" if args.v else ""))
                    traceback.print_exc(file=sys.stdout)
                    print_logs(seq)
                else:
                    passed += 1
                    print(f"PASS {name}" + (f" ({time.monotonic() - t0:.2f}s)" if args.v else ""))
                sys.stdout.flush()
        finally:
            if hasattr(mod, "teardown_module"):
                try:
                    run_call(mod.teardown_module, timeout_s)
                except Exception:  # noqa: BLE001
                    failed += 1
                    print("FAIL teardown_module")
                    traceback.print_exc(file=sys.stdout)
            # whatever a module left running is stopped before the next module
            harness.stop_all()

    harness.stop_all()
    if args.v:
        print(f"integration: {time.monotonic() - t_suite:.1f}s")
    if failed or args.keep:
        print(f"integration: logs kept in {harness.tmp_root()}")
    else:
        harness.remove_tmp()
    print(f"integration: {passed} passed, {failed} failed", flush=True)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
