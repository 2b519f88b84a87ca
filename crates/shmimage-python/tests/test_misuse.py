"""What careless code does: use after close, double close, objects passed
between threads, fork, a second peer, a hostile process scribbling on the
headers while both ends run. Every answer is a clear exception (never a
crash, a hang or a wrong frame). Crash-prone cases run in a child
interpreter (sub.run_snippet)."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import shmimage
from peer import pattern
from sub import run_snippet

MiB = 1024 * 1024


# --- use after close, double close ---------------------------------------------------


def test_every_server_call_after_close_is_a_closed_error(stream):
    server, client, _ = stream
    server.close()
    server.close()  # idempotent
    assert server.closed
    for call in (
        lambda: server.put(1, pattern(1, 4, 4)),
        lambda: server.loan(4, 4),
        lambda: server.wait_for_client(0.01),
        lambda: server.wait_for_buffer(0.01),
        lambda: server.is_connected,
        lambda: server.client_liveness(),
        lambda: server.stats(),
    ):
        with pytest.raises(shmimage.ClosedError):
            call()
    with server:  # entering a closed server is harmless; leaving closes again
        pass


def test_every_client_call_after_close_is_a_closed_error(stream):
    _, client, _ = stream
    client.close()
    client.close()
    assert client.closed
    for call in (
        lambda: client.wait_frame(0.01),
        lambda: client.lock(),
        lambda: next(iter(client.frames(0.01))),
        lambda: client.server_liveness(),
        lambda: client.stats(),
        lambda: client.capacity,
    ):
        with pytest.raises(shmimage.ClosedError):
            call()


def test_frames_and_loans_after_their_end(stream):
    server, client, _ = stream
    server.put(1, pattern(1, 4, 4))
    frame = client.wait_frame(1.0)
    frame.release()
    frame.release()
    for call in (frame.array, frame.copy, frame.tobytes, lambda: np.asarray(frame)):
        with pytest.raises(shmimage.ClosedError):
            call()
    loan = server.loan(4, 4)
    loan.commit(1)
    for call in (loan.array, lambda: loan.commit(2), loan.abandon, lambda: np.asarray(loan)):
        with pytest.raises(shmimage.ClosedError):
            call()
    f = shmimage.create_stream_file(4, 4)
    f.close()
    f.close()
    assert f.closed and not os.path.exists(f.path)


def test_use_after_close_in_every_order_never_crashes(stream_path):
    out = run_snippet(
        """
        import sys, gc, numpy as np, shmimage
        from peer import pattern
        path = sys.argv[1]
        ok = 0
        for order in range(6):
            server = shmimage.Server(path); client = shmimage.Client(path)
            server.put(1, pattern(1, 8, 8))
            frame = client.wait_frame(2)
            loan = server.loan(8, 8)
            closers = [client.close, server.close, frame.release, loan.abandon]
            closers = closers[order % 4:] + closers[:order % 4]
            if order >= 4:
                closers.reverse()
            for c in closers:
                c()
            for use in (frame.array, frame.copy, loan.array, lambda: loan.commit(3),
                        lambda: client.wait_frame(0), lambda: server.put(2, pattern(2, 8, 8))):
                try:
                    use()
                except shmimage.ClosedError:
                    ok += 1
            del frame, loan, server, client
            gc.collect()
        print(ok)
        """,
        stream_path(MiB),
    )
    assert int(out.split()[-1]) == 36


# --- wrong threads ----------------------------------------------------------------------


def test_frames_and_loans_may_end_on_another_thread(stream):
    server, client, _ = stream
    server.put(1, pattern(1, 8, 8))
    frame = client.wait_frame(1.0)
    t = threading.Thread(target=frame.release)
    t.start()
    t.join()
    assert frame.released
    loan = server.loan(8, 8)
    loan.array()[...] = pattern(2, 8, 8)
    t = threading.Thread(target=loan.commit, args=(2,))
    t.start()
    t.join()
    with client.wait_frame(1.0) as f:
        assert f.number == 2 and (f.array() == pattern(2, 8, 8)).all()


def test_many_threads_hammering_one_stream_then_closing(stream_path):
    """Readers, writers and closers on shared objects for a second: only
    shmimage errors (and BufferError for views) come out, nothing hangs."""
    out = run_snippet(
        """
        import sys, threading, time, shmimage
        from peer import pattern
        path = sys.argv[1]
        server = shmimage.Server(path); client = shmimage.Client(path)
        img = pattern(1, 32, 32)
        stop = threading.Event(); unexpected = []

        def loop(body):
            def run():
                while not stop.is_set():
                    try:
                        body()
                    except (shmimage.ShmImageError, BufferError):
                        pass
                    except Exception as exc:
                        unexpected.append(repr(exc))
            return threading.Thread(target=run)

        def read():
            with client.wait_frame(0.01) as f:
                f.array().sum()
        def put():
            server.put(1, img, timeout=0.01)
        def loan():
            with server.loan(32, 32) as l:
                l.array()[0, 0, 0] = 1
                del l
        def lock():
            client.lock().release()
        threads = [loop(b) for b in (read, read, put, loan, lock)]
        for t in threads: t.start()
        time.sleep(1.0)
        client.close(); server.close()   # from a third thread, mid-flight
        time.sleep(0.2)
        stop.set()
        for t in threads: t.join(timeout=10)
        assert not any(t.is_alive() for t in threads), "a thread is stuck"
        assert not unexpected, unexpected[:5]
        print("ok")
        """,
        stream_path(MiB),
    )
    assert out.split() == ["ok"]


# --- fork ---------------------------------------------------------------------------------


def test_fork_child_gets_forked_errors_and_keeps_the_parents_file(stream_path):
    out = run_snippet(
        """
        import os, sys, shmimage
        f = shmimage.create_stream_file(16, 16)
        server = shmimage.Server(f); client = shmimage.Client(f)
        loan = server.loan(16, 16)
        pid = os.fork()
        if pid == 0:
            for use in (loan.array, lambda: loan.commit(1), lambda: client.lock(), lambda: server.stats()):
                try:
                    use(); os._exit(3)
                except shmimage.ForkedError:
                    pass
            f.close()          # the parent's file: left alone
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert os.path.exists(f.path)
        loan.commit(1)
        with client.wait_frame(2) as fr:
            assert fr.number == 1
        client.close(); server.close(); f.close()
        assert not os.path.exists(f.path)
        print("ok")
        """
    )
    assert out.split() == ["ok"]


# --- second peers ----------------------------------------------------------------------------


def test_a_second_server_or_client_is_refused_with_who_holds_it(stream):
    server, client, path = stream
    with pytest.raises(shmimage.PeerBusyError) as exc:
        shmimage.Server(path)
    # The pid is known when the kernel tells it (OFD locks do not).
    assert exc.value.role == "server" and exc.value.pid in (None, os.getpid())
    assert os.path.samefile(exc.value.path, path) and path in str(exc.value)
    assert "another server is running" in str(exc.value)
    with pytest.raises(shmimage.PeerBusyError) as exc:
        shmimage.Client(path)
    assert exc.value.role == "client" and exc.value.code == -100
    # The first pair still works, and once a peer closes its role is free.
    server.put(1, pattern(1, 4, 4))
    with client.wait_frame(1.0) as f:
        assert f.number == 1
    client.close()
    with shmimage.Client(path) as again:
        server.put(2, pattern(2, 4, 4))
        assert again.wait_frame(1.0).number == 2


def test_a_killed_clients_role_is_taken_over(stream_path, peer):
    path = stream_path(MiB)
    with shmimage.Server(path) as server:
        reader = peer("modern-client", path, 1000000)
        with pytest.raises(shmimage.PeerBusyError) as exc:
            shmimage.Client(path)
        assert exc.value.role == "client" and exc.value.pid in (None, reader.proc.pid)
        os.kill(reader.proc.pid, signal.SIGKILL)
        reader.proc.wait(timeout=5)
        with shmimage.Client(path) as client:
            server.put(1, pattern(1, 4, 4), timeout=1.0)
            with client.wait_frame(2.0) as f:
                assert f.number == 1


# --- a hostile process ------------------------------------------------------------------------


def test_hostile_header_writes_while_both_ends_run(stream_path):
    """A third party writes random bytes over the file's headers while a
    server thread puts and a client thread reads: no crash, no hang, only
    shmimage errors."""
    path = stream_path(MiB)
    out = run_snippet(
        """
        import mmap, os, random, sys, threading, time, shmimage
        from peer import pattern
        path = sys.argv[1]
        server = shmimage.Server(path); client = shmimage.Client(path)
        frames = [pattern(i, 40, 30) for i in range(4)]
        stop = threading.Event(); unexpected = []; counts = {"put": 0, "read": 0}

        def guard(body):
            def run():
                while not stop.is_set():
                    try:
                        body()
                    except shmimage.ShmImageError:
                        time.sleep(0.001)
                    except Exception as exc:
                        unexpected.append(repr(exc))
            return threading.Thread(target=run)

        def put():
            n = counts["put"] + 1
            server.put(n, frames[n % 4], timeout=0.01)
            counts["put"] = n
        def read():
            with client.wait_frame(0.05) as f:
                f.array().sum()
                counts["read"] += 1
        def scribble():
            with open(path, "r+b") as fh:
                mm = mmap.mmap(fh.fileno(), 0)
                rnd = random.Random(7)
                end = time.monotonic() + 1.5
                while time.monotonic() < end:
                    off = rnd.randrange(0, 48)
                    mm[off] = rnd.randrange(256)
                mm.close()
        threads = [guard(put), guard(read)]
        for t in threads: t.start()
        s = threading.Thread(target=scribble); s.start(); s.join()
        stop.set()
        for t in threads: t.join(timeout=10)
        assert not any(t.is_alive() for t in threads), "a thread is stuck"
        assert not unexpected, unexpected[:5]
        client.close(); server.close()
        print("ok", counts["put"], counts["read"])
        """,
        path,
        timeout=120,
    )
    assert out.split()[0] == "ok"
