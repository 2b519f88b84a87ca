"""Run a Python snippet in a child interpreter, so a crash (a segfault, an
abort) fails the test that caused it instead of killing pytest."""

import os
import signal
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))


def run_snippet(code, *args, timeout=60, expect_rc=0):
    """Run `code` (dedented) with `args` in sys.argv[1:]; return its stdout.
    Fails with the child's output if it died of a signal or exited with
    another code than `expect_rc`."""
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if r.returncode < 0:
        name = signal.Signals(-r.returncode).name
        raise AssertionError("the child died of {}:\n{}\n{}".format(name, r.stdout[-2000:], r.stderr[-4000:]))
    assert r.returncode == expect_rc, "exit code {}:\n{}\n{}".format(r.returncode, r.stdout[-2000:], r.stderr[-4000:])
    assert "PanicException" not in r.stderr and "panicked" not in r.stderr, r.stderr[-4000:]
    return r.stdout
