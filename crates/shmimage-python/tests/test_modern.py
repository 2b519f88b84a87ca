"""The package shmimage: Server/Client/Frame/Loan, zero-copy views and their
lifetime rules, typed exceptions, timeouts, liveness, the GIL."""

import gc
import mmap
import os
import signal
import threading
import time

import numpy as np
import pytest

import shmimage
from peer import pattern

MiB = 1024 * 1024


def payload_offsets(path):
    size = os.path.getsize(path)
    n = (size - 48) // 2 // 8 * 8
    return 24, 48 + n


def mapped(path):
    with open(path, "r+b") as f:
        return mmap.mmap(f.fileno(), 0)


# --- files --------------------------------------------------------------------


def test_create_stream_file_is_sized_private_and_removed():
    with shmimage.create_stream_file(640, 480) as f:
        path = f.path
        assert os.fspath(f) == path and os.path.isfile(path)
        assert os.path.getsize(path) >= 2 * 640 * 480 * 3 + 48
        assert os.stat(path).st_mode & 0o777 == 0o600
        with shmimage.Server(f) as server, shmimage.Client(f) as client:
            assert server.capacity >= 640 * 480 * 3 == client.capacity - (client.capacity - 640 * 480 * 3)
    assert f.closed and not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    f.close()  # idempotent
    with pytest.raises(shmimage.BadArgsError):
        shmimage.create_stream_file(0, 10)


# --- frames and views ------------------------------------------------------------


def test_put_and_wait_frame_roundtrip(stream):
    server, client, _ = stream
    img = pattern(7, 64, 48)
    server.put(7, img)
    with client.wait_frame(timeout=1.0) as frame:
        assert (frame.number, frame.width, frame.height, frame.nbytes) == (7, 64, 48, 64 * 48 * 3)
        assert frame.in_place
        arr = frame.array()
        assert arr.shape == (48, 64, 3) and arr.dtype == np.uint8
        assert (arr == img).all()
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0, 0, 0] = 1
        with pytest.raises(ValueError):
            arr.flags.writeable = True
        copy = frame.copy()
        assert (copy == img).all() and copy.flags.writeable and copy.flags.owndata is False or True
        assert frame.tobytes() == img.tobytes()
        del arr
    assert frame.released
    # The copy outlives the frame.
    assert (copy == img).all()


def test_array_is_a_view_of_the_shared_memory(stream):
    """Zero copy: the array's data pointer lies inside one buffer of the
    mapping, and bytes written to the file through another mapping show up
    in the array at once."""
    server, client, path = stream
    img = pattern(1, 32, 16)
    server.put(1, img)
    frame = client.wait_frame(timeout=1.0)
    a, b = frame.array(), frame.array()
    assert a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    assert np.shares_memory(a, b)
    mm = mapped(path)
    off = next(o for o in payload_offsets(path) if mm[o : o + img.nbytes] == img.tobytes())
    mm[off] = (int(a[0, 0, 0]) + 1) % 256
    assert a[0, 0, 0] == mm[off] and b[0, 0, 0] == mm[off]
    mm.close()
    del a, b
    frame.release()


def test_release_refuses_while_views_exist(stream):
    server, client, _ = stream
    server.put(1, pattern(1, 8, 8))
    frame = client.wait_frame(timeout=1.0)
    arr = frame.array()
    part = arr[::2, 1:]  # a derived view keeps the base alive
    del arr
    with pytest.raises(BufferError, match="still exist"):
        frame.release()
    assert not frame.released
    del part
    frame.release()
    frame.release()  # idempotent
    with pytest.raises(shmimage.ClosedError):
        frame.array()
    with pytest.raises(shmimage.ClosedError):
        frame.copy()


def test_with_block_exit_refuses_while_a_view_lives(stream):
    server, client, _ = stream
    server.put(1, pattern(1, 8, 8))
    with pytest.raises(BufferError):
        with client.wait_frame(timeout=1.0) as frame:
            kept = frame.array()
    del kept
    frame.release()
    # An exception in flight is not masked by the refusal.
    server.put(2, pattern(2, 8, 8))
    with pytest.raises(KeyError):
        with client.wait_frame(timeout=1.0) as frame:
            kept = frame.array()
            raise KeyError("boom")
    del kept, frame
    gc.collect()
    server.put(3, pattern(3, 8, 8))
    with client.wait_frame(timeout=1.0) as frame:
        assert frame.number == 3


def test_a_dropped_frame_is_released_by_the_garbage_collector(stream):
    server, client, _ = stream
    server.put(1, pattern(1, 8, 8))
    assert client.wait_frame(timeout=1.0).array().sum() > 0  # nothing kept
    server.put(2, pattern(2, 8, 8))
    with client.wait_frame(timeout=1.0) as frame:
        assert frame.number == 2


def test_holding_two_frames_blocks_the_next_lock(stream):
    # One held frame blocked the next lock before issue 11 (case 8): the
    # client now holds up to two, one per buffer.
    server, client, _ = stream
    server.put(1, pattern(1, 8, 8))
    first = client.lock()
    server.put(2, pattern(2, 8, 8))
    second = client.lock()
    assert (first.number, second.number) == (1, 2)
    assert (first.array() == pattern(1, 8, 8)).all() and (second.array() == pattern(2, 8, 8)).all()
    with pytest.raises(shmimage.NoBufferAvailableError):
        server.put(3, pattern(3, 8, 8))  # the client holds both buffers
    with pytest.raises(shmimage.LockedError) as exc:
        client.wait_frame(timeout=0.1)
    assert exc.value.code == -11
    first.release()
    server.put(3, pattern(3, 8, 8))
    assert client.lock().number == 3


def test_lock_and_wait_frame_timeouts(stream):
    _, client, _ = stream
    with pytest.raises(shmimage.NoFrameAvailableError) as exc:
        client.lock()
    assert exc.value.code == 2 and not isinstance(exc.value, TimeoutError)
    t0 = time.monotonic()
    with pytest.raises(shmimage.FrameTimeoutError) as exc:
        client.wait_frame(timeout=0.2)
    elapsed = time.monotonic() - t0
    assert 0.18 <= elapsed < 1.0
    assert isinstance(exc.value, TimeoutError)
    assert isinstance(exc.value, shmimage.NoFrameAvailableError)
    assert isinstance(exc.value, shmimage.ShmImageError)
    with pytest.raises(shmimage.BadArgsError):
        client.wait_frame(timeout=-1)
    with pytest.raises(shmimage.BadArgsError):
        client.wait_frame(timeout=float("nan"))


def test_flip_vertical(stream_path):
    path = stream_path(MiB)
    with shmimage.Server(path, flip_vertical=True) as server, shmimage.Client(path) as client:
        img = pattern(1, 5, 7)
        server.put(1, img)
        with client.wait_frame(timeout=1.0) as frame:
            assert (frame.copy() == img[::-1]).all()


def test_banded_frame_is_assembled_and_not_in_place(stream_path):
    w, h = 64, 64
    path = stream_path(48 + 2 * (w * 3 * 16))
    with shmimage.Server(path) as server, shmimage.Client(path) as client:
        img = pattern(4, w, h)
        server.put(4, img)  # four bands; the client's monitor drains them
        with client.wait_frame(timeout=2.0) as frame:
            assert not frame.in_place
            assert (frame.copy() == img).all()


# --- put ------------------------------------------------------------------------


def test_put_accepts_arrays_and_buffers_with_sizes(stream):
    server, client, _ = stream
    img = pattern(3, 6, 4)
    for n, pixels, kw in [
        (1, img, {}),
        (2, img.tobytes(), dict(width=6, height=4)),
        (3, bytearray(img.tobytes()), dict(width=6, height=4)),
        (4, memoryview(img.tobytes()), dict(width=6, height=4)),
        (5, img.reshape(-1), dict(width=6, height=4)),
    ]:
        server.put(n, pixels, **kw)
        with client.wait_frame(timeout=1.0) as frame:
            assert frame.number == n and frame.tobytes() == img.tobytes()


@pytest.mark.parametrize(
    "pixels, kw",
    [
        (b"\0" * 72, {}),  # a buffer needs width and height
        (np.zeros((4, 6, 3), np.uint16), {}),
        # Gray (h, w), RGBA (h, w, 4) and non-contiguous arrays were refused
        # here; issue 14 makes put convert them (tests/test_habits.py).
        (np.zeros((4, 6, 2), np.uint8), {}),
        (b"\0" * 72, dict(width=6)),
        (b"\0" * 71, dict(width=6, height=4)),
        (b"\0" * 72, dict(width=0, height=4)),
        ("text", {}),
        (None, dict(width=1, height=1)),
    ],
)
def test_put_rejects_bad_pixels(stream, pixels, kw):
    server, _, _ = stream
    with pytest.raises(shmimage.BadArgsError) as exc:
        server.put(1, pixels, **kw)
    assert isinstance(exc.value, ValueError) and exc.value.code == -1


def test_put_without_client_is_unconnected(stream_path):
    with shmimage.Server(stream_path(MiB)) as server:
        assert not server.is_connected
        with pytest.raises(shmimage.UnconnectedError) as exc:
            server.put(1, pattern(1, 4, 4))
        assert exc.value.code == 4
        assert server.wait_for_client(timeout=0.05) is False
        assert server.stats()["frames_unconnected"] == 1


def test_put_when_the_client_holds_both_buffers(stream):
    server, client, _ = stream
    img = pattern(1, 8, 8)
    server.put(1, img)
    frame = client.lock()
    server.put(2, img)
    with pytest.raises(shmimage.NoBufferAvailableError) as exc:
        server.put(3, img)
    assert exc.value.code == 1
    t0 = time.monotonic()
    with pytest.raises(shmimage.NoBufferAvailableError):
        server.put(3, img, timeout=0.15)
    assert time.monotonic() - t0 >= 0.14
    assert server.wait_for_buffer(timeout=0.05) is False
    # Released by another thread while put waits (GIL released in put).
    threading.Timer(0.1, frame.release).start()
    server.put(3, img, timeout=2.0)
    assert server.stats()["frames_sent"] == 3


def test_frame_too_large(stream_path):
    path = stream_path(4096)
    with shmimage.Server(path) as server, shmimage.Client(path):
        with pytest.raises(shmimage.FrameTooLargeError) as exc:
            server.put(1, b"\0" * 3000 * 3, width=3000, height=1)
        assert exc.value.code == -10 and isinstance(exc.value, ValueError)
        with pytest.raises(shmimage.FrameTooLargeError):
            server.loan(100, 100)


# --- loan -------------------------------------------------------------------------


def test_loan_writes_in_place_and_commits(stream):
    server, client, path = stream
    img = pattern(9, 16, 8)
    with server.loan(16, 8) as loan:
        assert (loan.width, loan.height, loan.is_open) == (16, 8, True)
        view = loan.array()
        assert view.shape == (8, 16, 3) and view.flags.writeable
        view[...] = img
        # Zero copy: the bytes are already in the file before commit.
        mm = mapped(path)
        assert any(mm[o : o + img.nbytes] == img.tobytes() for o in payload_offsets(path))
        mm.close()
        with pytest.raises(BufferError):
            loan.commit(9)
        with pytest.raises(shmimage.LockedError):
            server.put(1, img)
        with pytest.raises(shmimage.LockedError):
            server.loan(4, 4)
        del view
        loan.commit(9)
        assert not loan.is_open
        with pytest.raises(shmimage.ClosedError):
            loan.commit(10)
        with pytest.raises(shmimage.ClosedError):
            loan.array()
    with client.wait_frame(timeout=1.0) as frame:
        assert frame.number == 9 and (frame.copy() == img).all()


def test_loan_abandoned_publishes_nothing(stream):
    server, client, _ = stream
    with server.loan(4, 4) as loan:
        loan.array()[...] = 255
    assert not loan.is_open
    loan2 = server.loan(4, 4)
    loan2.abandon()
    loan3 = server.loan(4, 4)
    del loan3  # garbage: abandoned
    gc.collect()
    with pytest.raises(shmimage.NoFrameAvailableError):
        client.lock()
    server.put(1, pattern(1, 4, 4))  # the server is usable again
    assert client.lock().number == 1


def test_close_with_live_loan_views_is_refused(stream):
    server, _, _ = stream
    loan = server.loan(4, 4)
    view = loan.array()
    with pytest.raises(BufferError):
        server.close()
    del view
    server.close()
    assert server.closed and not loan.is_open  # it said "open" before issue 11 (case 1)
    with pytest.raises(shmimage.ClosedError):
        loan.array()
    with pytest.raises(shmimage.ClosedError):
        server.put(1, pattern(1, 4, 4))
    server.close()  # idempotent


# --- errors, closing, state -------------------------------------------------------


def test_every_failure_code_has_a_typed_exception():
    expected = {
        "UnconnectedError": 4,
        "NoFrameAvailableError": 2,
        "NoBufferAvailableError": 1,
        "BadArgsError": -1,
        "NotLockedError": -2,
        "BadFileSizeError": -3,
        "UnableToOpenFileError": -4,
        "UnableToMapFileError": -5,
        "MemoryAllocError": -6,
        "ThreadCreateError": -7,
        "IsServerError": -8,
        "IsNotServerError": -9,
        "FrameTooLargeError": -10,
        "LockedError": -11,
    }
    for name, code in expected.items():
        cls = getattr(shmimage, name)
        assert issubclass(cls, shmimage.ShmImageError) and cls.code == code, name
    assert issubclass(shmimage.ServerGoneError, shmimage.UnconnectedError)
    assert issubclass(shmimage.FrameTimeoutError, TimeoutError)
    assert issubclass(shmimage.UnableToOpenFileError, OSError)


def test_open_errors(stream_path, tmp_path):
    with pytest.raises(shmimage.BadFileSizeError) as exc:
        shmimage.Client(str(tmp_path / "missing.bin"))
    assert exc.value.code == -3 and "does not exist" in str(exc.value)
    with pytest.raises(shmimage.BadFileSizeError):
        shmimage.Server(stream_path(10))
    with pytest.raises(shmimage.UnableToOpenFileError) as exc:
        shmimage.Server(tmp_path)
    assert isinstance(exc.value, OSError)


def test_closed_client_and_frames_outliving_it(stream):
    server, client, _ = stream
    img = pattern(2, 8, 8)
    server.put(2, img)
    frame = client.wait_frame(timeout=1.0)
    view = frame.array()
    client.close()
    assert client.closed
    with pytest.raises(shmimage.ClosedError):
        client.wait_frame(timeout=0.1)
    # Issue 11 (case 1): a frame outliving its client answers ClosedError
    # (it kept the stream open before); a view made earlier stays readable
    # memory of this process, never unmapped.
    with pytest.raises(shmimage.ClosedError):
        frame.array()
    assert view.shape == (8, 8, 3) and int(view.sum()) >= 0
    del view
    frame.release()
    client.close()


def test_reconnected_liveness_and_stats(stream):
    server, client, path = stream
    assert not client.reconnected
    assert server.is_connected
    assert client.server_liveness() == "alive" and client.is_server_alive()
    assert server.client_liveness() == "alive" and server.is_client_alive()
    server.put(1, pattern(1, 4, 4))
    assert server.stats()["frames_sent"] == 1
    assert set(client.stats()) >= {"frames_locked", "frames_stale"}
    # A second client while this one lives is refused since issue 11
    # (case 2); once it has gone, the next one connects.
    client.close()
    with shmimage.Client(path) as second:
        assert second.server_liveness() == "alive"
    assert "Server(" in repr(server) and "Client(" in repr(client) and "closed" in repr(client)


# --- iteration ----------------------------------------------------------------------


def test_frames_iterates_until_a_timeout(stream):
    server, client, _ = stream

    def push():
        for n in range(1, 6):
            server.put(n, pattern(n, 8, 8), timeout=2.0)

    t = threading.Thread(target=push)
    t.start()
    seen = [frame.number for frame in client.frames(timeout=0.5) if frame.array().sum() >= 0]
    t.join()
    # Under load the client may see only the newest frames (lock drops stale
    # ones), but it always ends with the last one, then times out.
    assert seen and seen[-1] == 5 and seen == sorted(seen)


def test_frames_advances_while_views_of_the_last_exist(stream):
    # It refused (BufferError) before issue 11 (case 8): the frame with views
    # now stays locked until its last view is gone, beside the next one.
    server, client, _ = stream
    server.put(1, pattern(1, 8, 8))
    it = client.frames(timeout=0.2)
    kept = next(it).array()
    server.put(2, pattern(2, 8, 8), timeout=1.0)
    second = next(it)
    assert second.number == 2 and (kept == pattern(1, 8, 8)).all()
    with pytest.raises(shmimage.NoBufferAvailableError):
        server.put(3, pattern(3, 8, 8))  # both buffers held: frame 1 by its view
    del kept, second
    gc.collect()
    server.put(3, pattern(3, 8, 8), timeout=1.0)
    assert next(it).number == 3


# --- two processes --------------------------------------------------------------------


def test_frames_from_a_server_process_are_exact_and_in_place(stream_path, peer):
    w, h = 640, 360
    path = stream_path(4 * MiB)
    server = peer("modern-server", path, w, h, 1.0)
    with shmimage.Client(path) as client:
        numbers = []
        for frame in client.frames(timeout=2.0):
            assert frame.in_place and (frame.width, frame.height) == (w, h)
            if len(numbers) < 3:
                assert (frame.array() == pattern(frame.number % 4, w, h)).all()
            numbers.append(frame.number)
        # The iteration ended because the server exited, not by timeout.
        assert not client.is_server_alive()
        assert len(numbers) >= 5 and numbers == sorted(numbers)
    sent = int(server.finish()[-1])
    assert len(numbers) <= sent


def test_a_killed_server_is_noticed_promptly(stream_path, peer):
    path = stream_path(4 * MiB)
    server = peer("modern-server", path, 320, 240, -1)
    with shmimage.Client(path) as client:
        with client.wait_frame(timeout=5.0):
            pass
        assert client.is_server_alive()
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=5)
        t0 = time.monotonic()
        with pytest.raises(shmimage.ServerGoneError) as exc:
            while True:  # frames already published may still be read
                client.wait_frame(timeout=5.0).release()
        assert time.monotonic() - t0 < 1.0
        # Its own code since issue 11 (case 9): UNCONNECTED (4) lumped six
        # situations together; ServerGoneError is still an UnconnectedError.
        assert isinstance(exc.value, shmimage.UnconnectedError) and exc.value.code == -104
        assert not client.is_server_alive() and client.server_liveness() == "gone"


def test_a_client_process_counts_frames(stream_path, peer):
    path = stream_path(4 * MiB)
    with shmimage.Server(path) as server:
        reader = peer("modern-client", path, 5)
        n, deadline = 1, time.monotonic() + 10
        while reader.proc.poll() is None and time.monotonic() < deadline:
            try:
                server.put(n, pattern(n, 64, 64), timeout=0.05)
                n += 1
            except (shmimage.NoBufferAvailableError, shmimage.UnconnectedError):
                time.sleep(0.001)
        assert reader.finish() == ["5"]


# --- the GIL ----------------------------------------------------------------------------


def test_the_gil_is_released_while_waiting(stream):
    _, client, _ = stream
    count = 0
    stop = threading.Event()

    def spin():
        nonlocal count
        while not stop.is_set():
            count += 1

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.02)
    before = count
    with pytest.raises(shmimage.FrameTimeoutError):
        client.wait_frame(timeout=0.5)
    during = count - before
    stop.set()
    t.join()
    # A thread that got the GIL for ~0.5 s counts to millions; one that was
    # starved would count to (almost) nothing.
    assert during > 100_000, during


def test_threads_sharing_a_client_and_server_do_not_deadlock(stream):
    """A reader, a poller and a writer thread on one stream for 0.5 s: every
    one finishes (no lock is held while waiting for the GIL)."""
    server, client, _ = stream
    stop = threading.Event()
    errors, counts = [], {"read": 0, "poll": 0, "put": 0}

    def guarded(name, body):
        def run():
            try:
                while not stop.is_set():
                    body()
                    counts[name] += 1
            except Exception as exc:  # reported below
                errors.append(exc)

        return threading.Thread(target=run)

    img = pattern(1, 32, 32)

    def read():
        try:
            with client.wait_frame(timeout=0.05) as frame:
                assert frame.array()[0, 0, 1] == 0
                frame.copy()
        except shmimage.FrameTimeoutError:
            pass

    def poll():
        client.server_liveness()
        client.stats()
        server.stats()

    def put():
        try:
            server.put(counts["put"] + 1, img, timeout=0.01)
        except shmimage.NoBufferAvailableError:
            pass

    threads = [guarded("read", read), guarded("poll", poll), guarded("put", put)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert not errors, errors
    assert counts["read"] > 0 and counts["put"] > 0 and counts["poll"] > 0
