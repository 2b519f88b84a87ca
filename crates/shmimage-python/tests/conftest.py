"""Shared fixtures: a unique stream file per test (removed afterwards) and
peer processes that play the other end of a stream."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peer.py")


def _base_dir():
    # /dev/shm is memory-backed, like the files real callers would use.
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


@pytest.fixture
def stream_path():
    """A factory: stream_path(size) -> the path of a new zero-filled file."""
    d = tempfile.mkdtemp(prefix="shmimage-pytest-", dir=_base_dir())
    made = []

    def make(size=1 << 20, name=None):
        p = os.path.join(d, name or "stream{}.bin".format(len(made)))
        with open(p, "wb") as f:
            f.truncate(size)
        made.append(p)
        return p

    yield make
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def stream(stream_path):
    """(server, client, path) on a fresh 1 MiB file."""
    import shmimage  # when used: the rest of conftest loads without the package

    path = stream_path(1 << 20)
    server = shmimage.Server(path)
    client = shmimage.Client(path)
    yield server, client, path
    client.close()
    server.close()


@pytest.fixture(autouse=True)
def _no_leaked_dropin_streams():
    """Every drop-in test starts and ends with no open stream ids."""
    import ensight_grpc_shmem as e

    e._impl._destroy_all()
    yield
    e._impl._destroy_all()


class Peer:
    """A peer process running tests/peer.py; it prints 'ready' once set up."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, PEER, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
            raise AssertionError("peer did not start: {!r} {} {}".format(line, out, err))

    def finish(self, timeout=20):
        """Wait for the peer's exit; return its remaining stdout lines."""
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err
        return out.split()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


@pytest.fixture
def peer():
    started = []

    def start(*args):
        p = Peer(*args)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()
