"""The drop-in module ensight_grpc_shmem: every function, constant and error
path, the module's documented example across two processes, and the way
ansys-pyensight's EnSightGRPC drives it."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import ensight_grpc_shmem as e
from peer import pattern

MiB = 1024 * 1024
NOTHREADS = 0x2  # not exported by the module, but a valid option bit


def frame_bytes(number, w, h):
    return pattern(number, w, h).tobytes()


@pytest.fixture
def pair(stream_path):
    """A server id and a client id on one fresh 1 MiB file."""
    path = stream_path(MiB)
    s = e.stream_create(path, e.OPTIONS_SERVER)
    c = e.stream_create(path)
    yield s, c
    for i in (c, s):
        try:
            e.stream_destroy(i)
        except RuntimeError:
            pass


# --- attributes -------------------------------------------------------------


def test_constants_have_ensights_values():
    assert e.version == "1.0"
    assert (e.OPTIONS_NONE, e.OPTIONS_SERVER, e.OPTIONS_FLIPVERTICAL) == (0, 3, 0x100)
    assert e.ERROR_NOERROR == 0
    assert e.ERROR_NO_BUFFERAVAILABLE == 1
    assert e.ERROR_NO_FRAMEAVAILABLE == 2
    assert e.ERROR_RECONNECTING == 3
    assert e.ERROR_UNCONNECTED == 4
    for name in ("OPTIONS_NONE", "OPTIONS_SERVER", "ERROR_NOERROR", "ERROR_UNCONNECTED"):
        assert type(getattr(e, name)) is int
    # The original defines no IMAGESTREAM_* names and no negative codes.
    assert not hasattr(e, "IMAGESTREAM_OPTIONS_SERVER")


# --- ids --------------------------------------------------------------------


def test_ids_count_down_from_49_and_are_truthy(pair):
    s, c = pair
    assert (s, c) == (49, 48)
    assert type(s) is int and s and c


def test_freed_id_is_reused_last_free_first(stream_path):
    # One file per server: a second live server on one file is refused
    # since issue 11 (case 2), so these tests no longer stack them.
    a = e.stream_create(stream_path(MiB, name="a.bin"), e.OPTIONS_SERVER)
    b = e.stream_create(stream_path(MiB, name="b.bin"), e.OPTIONS_SERVER)
    assert (a, b) == (49, 48)
    assert e.stream_destroy(a) == e.ERROR_NOERROR
    assert e.stream_create(stream_path(MiB, name="c.bin"), e.OPTIONS_SERVER) == 49
    e.stream_destroy(b)


def test_more_than_50_streams_raise(stream_path):
    ids = [e.stream_create(stream_path(64 * 1024, name="s{}.bin".format(i)), e.OPTIONS_SERVER) for i in range(50)]
    assert ids == list(range(49, -1, -1))
    with pytest.raises(RuntimeError, match="Maximum number"):
        e.stream_create(stream_path(64 * 1024, name="s50.bin"), e.OPTIONS_SERVER)
    for i in ids:
        e.stream_destroy(i)
    assert e._impl._open_streams() == 0


@pytest.mark.parametrize("func", ["stream_lock", "stream_unlock", "stream_destroy"])
@pytest.mark.parametrize("bad", [0, 17, -1, 50, 10**6])
def test_unknown_ids_raise(func, bad):
    with pytest.raises(RuntimeError, match="^Unknown stream id$"):
        getattr(e, func)(bad)


def test_unknown_id_for_putframe_and_destroy_twice(pair):
    s, c = pair
    with pytest.raises(RuntimeError, match="Unknown stream id"):
        e.stream_putframe(7, 1, 1, 1, b"abc")
    assert e.stream_destroy(c) == 0
    with pytest.raises(RuntimeError, match="Unknown stream id"):
        e.stream_destroy(c)
    with pytest.raises(RuntimeError, match="Unknown stream id"):
        e.stream_lock(c)


# --- create -----------------------------------------------------------------


def test_create_missing_small_or_bad_files_raise(stream_path, tmp_path):
    with pytest.raises(RuntimeError, match="missing or too small"):
        e.stream_create(str(tmp_path / "nope.bin"))
    with pytest.raises(RuntimeError, match="missing or too small"):
        e.stream_create(stream_path(10), e.OPTIONS_SERVER)
    with pytest.raises(RuntimeError, match="cannot be opened"):
        e.stream_create(str(tmp_path), e.OPTIONS_SERVER)
    assert e._impl._open_streams() == 0


@pytest.mark.parametrize("opts", [0x8, 0x1000, -1, 2**40])
def test_create_with_unknown_options_raises(stream_path, opts):
    with pytest.raises((RuntimeError, OverflowError)):
        e.stream_create(stream_path(MiB), opts)


def test_create_keywords_and_pathlike(stream_path):
    import pathlib

    path = stream_path(MiB)
    s = e.stream_create(filename=path, options=e.OPTIONS_SERVER)
    c = e.stream_create(pathlib.Path(path))
    assert e.stream_putframe(s, 2, 2, 1, bytes(12)) == 0
    assert type(e.stream_lock(c)) is dict


def test_reconnecting_create_returns_a_usable_id(stream_path):
    """A client on a file that already carries a stream is RECONNECTING;
    unlike the original (which returned the bare code 3 as if it were an
    id), the stream is stored and its id works. (A second client while the
    first is alive is refused since issue 11, case 2: the first one leaves.)"""
    path = stream_path(MiB)
    s = e.stream_create(path, e.OPTIONS_SERVER)
    c1 = e.stream_create(path)
    e.stream_destroy(c1)
    c2 = e.stream_create(path)
    assert c2 == 48 and c2 != s
    assert e.stream_putframe(s, 4, 4, 5, frame_bytes(5, 4, 4)) == 0
    img = e.stream_lock(c2)
    assert type(img) is dict and img["framenumber"] == 5
    assert e.stream_unlock(c2) == 0
    for i in (c2, s):
        e.stream_destroy(i)


def test_a_second_live_client_or_server_is_refused(stream_path):
    path = stream_path(MiB)
    s = e.stream_create(path, e.OPTIONS_SERVER)
    c = e.stream_create(path)
    with pytest.raises(RuntimeError, match="another client is running on stream file"):
        e.stream_create(path)
    with pytest.raises(RuntimeError, match="another server is running on stream file"):
        e.stream_create(path, e.OPTIONS_SERVER)
    assert e._impl._open_streams() == 2
    for i in (c, s):
        e.stream_destroy(i)


# --- putframe / lock / unlock ----------------------------------------------


def test_putframe_without_client_is_unconnected(stream_path):
    s = e.stream_create(stream_path(MiB), e.OPTIONS_SERVER)
    assert e.stream_putframe(s, 4, 4, 1, bytes(48)) == e.ERROR_UNCONNECTED


def test_roundtrip_returns_a_dict_with_a_bytes_copy(pair):
    s, c = pair
    assert e.stream_lock(c) == e.ERROR_NO_FRAMEAVAILABLE
    px = frame_bytes(9, 64, 48)
    assert e.stream_putframe(s, 64, 48, 9, px) == e.ERROR_NOERROR
    img = e.stream_lock(c)
    assert type(img) is dict
    assert set(img) == {"width", "height", "framenumber", "pixeldata"}
    assert (img["width"], img["height"], img["framenumber"]) == (64, 48, 9)
    assert type(img["pixeldata"]) is bytes and img["pixeldata"] == px
    assert e.stream_unlock(c) == e.ERROR_NOERROR
    assert e.stream_lock(c) == e.ERROR_NO_FRAMEAVAILABLE
    # The copy outlives the unlock.
    assert img["pixeldata"] == px


def test_lock_returns_the_newest_frame(pair):
    s, c = pair
    for n in (1, 2):
        assert e.stream_putframe(s, 8, 8, n, frame_bytes(n, 8, 8)) == 0
    img = e.stream_lock(c)
    assert img["framenumber"] == 2 and img["pixeldata"] == frame_bytes(2, 8, 8)


def test_no_buffer_available_when_the_client_holds_both(stream_path):
    path = stream_path(MiB)
    s = e.stream_create(path, e.OPTIONS_SERVER)
    c = e.stream_create(path, NOTHREADS)
    assert e.stream_putframe(s, 8, 8, 1, bytes(192)) == 0
    assert type(e.stream_lock(c)) is dict
    assert e.stream_putframe(s, 8, 8, 2, bytes(192)) == 0
    assert e.stream_putframe(s, 8, 8, 3, bytes(192)) == e.ERROR_NO_BUFFERAVAILABLE
    assert e.stream_unlock(c) == 0
    assert e.stream_putframe(s, 8, 8, 3, bytes(192)) == 0


def test_lock_twice_unlock_twice_and_wrong_roles_raise(pair):
    s, c = pair
    e.stream_putframe(s, 2, 2, 1, bytes(12))
    assert type(e.stream_lock(c)) is dict
    with pytest.raises(RuntimeError, match="not allowed while a frame is locked"):
        e.stream_lock(c)
    assert e.stream_unlock(c) == 0
    with pytest.raises(RuntimeError, match="unlock called without a locked frame"):
        e.stream_unlock(c)
    with pytest.raises(RuntimeError, match="client-only call was made on a server"):
        e.stream_lock(s)
    with pytest.raises(RuntimeError, match="client-only call was made on a server"):
        e.stream_unlock(s)
    with pytest.raises(RuntimeError, match="server-only call was made on a client"):
        e.stream_putframe(c, 2, 2, 1, bytes(12))


def test_frame_too_large_raises(pair):
    s, _ = pair
    with pytest.raises(RuntimeError, match="too large"):
        e.stream_putframe(s, 200_000, 1, 1, bytes(600_000))


@pytest.mark.parametrize(
    "make",
    [
        bytes,
        bytearray,
        lambda b: memoryview(bytearray(b)),
        lambda b: np.frombuffer(b, np.uint8).reshape(4, 6, 3),
        lambda b: np.frombuffer(b + b"extra", np.uint8),
    ],
    ids=["bytes", "bytearray", "memoryview", "ndarray", "longer"],
)
def test_pixeldata_accepts_any_bytes_like(pair, make):
    s, c = pair
    px = frame_bytes(3, 6, 4)
    assert e.stream_putframe(s, 6, 4, 3, make(px)) == 0
    assert e.stream_lock(c)["pixeldata"] == px


@pytest.mark.parametrize("bad", [None, "text", 12, [0] * 72, np.zeros((6, 12), np.uint8)[:, ::3]])
def test_pixeldata_not_bytes_like_raises(pair, bad):
    s, _ = pair
    with pytest.raises(RuntimeError, match="bytes-like"):
        e.stream_putframe(s, 6, 4, 1, bad)


def test_pixeldata_too_small_or_bad_sizes_raise(pair):
    s, _ = pair
    with pytest.raises(RuntimeError, match="too small"):
        e.stream_putframe(s, 6, 4, 1, bytes(71))
    for w, h in ((0, 4), (6, 0), (-6, 4), (-1, -1)):
        with pytest.raises(RuntimeError, match="Invalid frame size"):
            e.stream_putframe(s, w, h, 1, bytes(72))


def test_frame_numbers_wrap_like_a_c_uint32(pair):
    s, c = pair
    assert e.stream_putframe(s, 1, 1, -1, b"abc") == 0
    assert e.stream_lock(c)["framenumber"] == 2**32 - 1


def test_flip_vertical_reverses_rows(stream_path):
    path = stream_path(MiB)
    s = e.stream_create(path, e.OPTIONS_SERVER | e.OPTIONS_FLIPVERTICAL)
    c = e.stream_create(path)
    img = pattern(1, 5, 3)
    assert e.stream_putframe(s, 5, 3, 1, img.tobytes()) == 0
    got = np.frombuffer(e.stream_lock(c)["pixeldata"], np.uint8).reshape(3, 5, 3)
    assert (got == img[::-1]).all()


def test_banded_frame_is_assembled(stream_path):
    """A frame four times the buffer size travels in bands; the client's
    monitor thread drains them while the server's putframe (GIL released)
    waits for free buffers."""
    w, h = 64, 64
    path = stream_path(48 + 2 * (w * 3 * 16))
    s = e.stream_create(path, e.OPTIONS_SERVER)
    c = e.stream_create(path)
    px = frame_bytes(11, w, h)
    assert e.stream_putframe(s, w, h, 11, px) == 0
    deadline = time.monotonic() + 5
    img = e.stream_lock(c)
    while type(img) is not dict and time.monotonic() < deadline:
        time.sleep(0.001)
        img = e.stream_lock(c)
    assert img["pixeldata"] == px


def test_destroyed_client_makes_the_server_unconnected(pair):
    s, c = pair
    assert e.stream_putframe(s, 2, 2, 1, bytes(12)) == 0
    assert e.stream_destroy(c) == 0
    assert e.stream_putframe(s, 2, 2, 2, bytes(12)) == e.ERROR_UNCONNECTED


# --- process exit -----------------------------------------------------------


def test_streams_open_at_exit_are_destroyed(stream_path):
    """An atexit hook registered before the import runs after the module's,
    and sees every stream gone and the client's buffers handed back (INIT)."""
    path = stream_path(MiB)
    code = """
import atexit, sys
def check():
    import ensight_grpc_shmem as e
    print("open", e._impl._open_streams())
atexit.register(check)
import ensight_grpc_shmem as e
s = e.stream_create(sys.argv[1], e.OPTIONS_SERVER)
c = e.stream_create(sys.argv[1])
assert e.stream_putframe(s, 2, 2, 1, bytes(12)) == 0
assert type(e.stream_lock(c)) is dict
"""
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["open", "0"]
    with open(path, "rb") as f:
        data = f.read()
    n = (len(data) - 48) // 2 // 8 * 8
    assert data[20] == 4 and data[24 + n + 20] == 4  # both INIT: client gone


# --- the documented example, two processes ---------------------------------


def test_documented_example_across_processes(stream_path, peer):
    """The module's example: a server process pushes 1920x1080 frames, this
    process's client counts them."""
    w, h = 1920, 1080
    path = stream_path(25 * MiB)
    server = peer("dropin-server", path, w, h, 1.5)
    c = e.stream_create(path)
    assert c
    count, last, checked = 0, 0, False
    deadline = time.monotonic() + 10
    while server.proc.poll() is None and time.monotonic() < deadline:
        img = e.stream_lock(c)
        if type(img) is dict:
            assert (img["width"], img["height"]) == (w, h)
            assert img["framenumber"] > last
            last = img["framenumber"]
            count += 1
            if not checked:
                assert img["pixeldata"] == frame_bytes(last % 4, w, h)
                checked = True
            e.stream_unlock(c)
        else:
            assert img in (e.ERROR_NO_FRAMEAVAILABLE,)
            time.sleep(0.0005)
    sent = int(server.finish()[-1])
    e.stream_destroy(c)
    assert count >= 5, (count, sent)
    assert count <= sent


# --- how ansys-pyensight's EnSightGRPC uses the module ----------------------


class FakeEnSightGRPC:
    """The shared-memory parts of pyensight's EnSightGRPC, call for call:
    lazy import, ids tested for truthiness, `type(img) is dict`, a daemon poll
    thread spinning on stream_lock, a broad `except Exception`, destroy at
    shutdown without unsubscribing."""

    def __init__(self):
        self._shmem_module = None
        self._shmem_client = None
        self._shmem_filename = None
        self._stub = object()
        self._image = None
        self._image_number = 0
        self._image_thread = None

    def _attempt_shared_mem_import(self):
        try:
            import ensight_grpc_shmem

            self._shmem_module = ensight_grpc_shmem
        except ModuleNotFoundError:
            pass

    def _find_filename(self, make, size=1024 * 1024 * 25):
        return make(size, name="shmem_{}.bin".format(os.getpid()))

    def subscribe_images(self, make, start_ensight):
        self._attempt_shared_mem_import()
        try:
            self._shmem_filename = self._find_filename(make)
            start_ensight(self._shmem_filename)  # SubscribeImages over gRPC
            self._shmem_client = self._shmem_module.stream_create(self._shmem_filename)
            if self._shmem_client:
                self._image_thread = threading.Thread(target=self._poll_images, daemon=True)
                self._image_thread.start()
        except Exception as exc:  # pragma: no cover - the test fails below
            print("Unable to subscribe to an image stream via shared memory: {}".format(exc))

    def _put_image(self, the_image):
        self._image = the_image
        self._image_number += 1

    def _poll_images(self):
        try:
            while self._stub is not None:
                img = self._shmem_module.stream_lock(self._shmem_client)
                if type(img) is dict:
                    the_image = dict(pixels=img["pixeldata"], width=img["width"], height=img["height"])
                    self._put_image(the_image)
                    self._shmem_module.stream_unlock(self._shmem_client)
        except Exception:
            pass

    def shutdown(self):
        self._stub = None
        if self._shmem_client:
            self._shmem_module.stream_destroy(self._shmem_client)
        self._shmem_client = None


def test_pyensight_usage_against_a_real_server_process(stream_path, peer):
    w, h = 640, 360
    procs = []
    grpc = FakeEnSightGRPC()
    grpc.subscribe_images(stream_path, lambda fn: procs.append(peer("dropin-server", fn, w, h, 1.0)))
    assert grpc._shmem_client == 49 and grpc._image_thread is not None
    # The poll thread spins without sleeping; the main thread still runs
    # because the module releases the GIL inside each call.
    ticks, deadline = 0, time.monotonic() + 10
    while grpc._image_number < 20 and procs[0].proc.poll() is None and time.monotonic() < deadline:
        ticks += 1
        time.sleep(0.001)
    assert grpc._image_number >= 5, grpc._image_number
    image = grpc._image
    assert (image["width"], image["height"]) == (w, h)
    px = np.frombuffer(image["pixels"], np.uint8).reshape(h, w, 3)
    assert (px[..., 1][0] == np.arange(w) % 256).all()
    procs[0].finish()
    grpc.shutdown()
    grpc._image_thread.join(timeout=5)
    assert not grpc._image_thread.is_alive()
    assert e._impl._open_streams() == 0
