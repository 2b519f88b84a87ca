"""Issue 14 (Python): the habits of NumPy, OpenCV, PIL, Jupyter and asyncio
users: np.asarray on frames and loans, writers taking other layouts and PIL
images, to_pil, _repr_png_, the row-order flag, async waits."""

import asyncio
import io
import threading
import time

import numpy as np
import pytest

import shmimage
from peer import pattern


# --- the array protocol ----------------------------------------------------------


def test_np_asarray_of_a_frame_is_the_zero_copy_view(stream):
    server, client, _ = stream
    img = pattern(3, 16, 8)
    server.put(3, img)
    frame = client.wait_frame(timeout=1.0)
    a = np.asarray(frame)
    assert a.shape == (8, 16, 3) and a.dtype == np.uint8
    assert (a == img).all()
    # The same memory as frame.array(): no copy, read-only, tracked as a view.
    assert np.shares_memory(a, frame.array())
    assert not a.flags.writeable
    with pytest.raises(BufferError):
        frame.release()
    # np.array(frame) copies; the copy is not a view of shared memory.
    c = np.array(frame)
    assert not np.shares_memory(c, a) and c.flags.writeable and (c == img).all()
    f = np.asarray(frame, dtype=np.float32)
    assert f.dtype == np.float32 and f[0, 0, 0] == img[0, 0, 0]
    del a
    frame.release()


def test_np_asarray_of_a_loan_is_the_writable_view(stream):
    server, client, _ = stream
    img = pattern(5, 12, 6)
    loan = server.loan(12, 6)
    a = np.asarray(loan)
    assert a.shape == (6, 12, 3) and a.flags.writeable
    a[...] = img
    del a
    loan.commit(5)
    with client.wait_frame(timeout=1.0) as frame:
        assert (frame.copy() == img).all()


# --- writers take other layouts --------------------------------------------------


def received(server, client, n, pixels, **kw):
    server.put(n, pixels, **kw)
    with client.wait_frame(timeout=1.0) as frame:
        assert frame.number == n
        return frame.copy()


def test_put_converts_bgr_rgba_gray_and_strided_arrays(stream):
    server, client, _ = stream
    rgb = pattern(1, 10, 6)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    rgba = np.concatenate([rgb, np.full((6, 10, 1), 200, np.uint8)], axis=2)
    bgra = np.concatenate([bgr, np.full((6, 10, 1), 7, np.uint8)], axis=2)
    gray = rgb[..., 1].copy()
    wide = np.zeros((6, 20, 3), np.uint8)
    wide[:, ::2] = rgb
    assert (received(server, client, 1, bgr, layout="bgr") == rgb).all()
    assert (received(server, client, 2, rgba) == rgb).all()  # inferred from 4 channels
    assert (received(server, client, 3, bgra, layout="bgra") == rgb).all()
    assert (received(server, client, 4, rgba, layout="rgbx") == rgb).all()
    g = received(server, client, 5, gray)
    assert (g == gray[..., None]).all()
    assert (received(server, client, 6, gray[..., None], layout="gray") == g).all()
    assert (received(server, client, 7, wide[:, ::2]) == rgb).all()  # not contiguous
    assert (received(server, client, 8, np.asfortranarray(rgb)) == rgb).all()
    # A view of BGR pixels (OpenCV's cv2.imread order) sent with layout=.
    assert (received(server, client, 9, bgr[::-1], layout="bgr") == rgb[::-1]).all()


@pytest.mark.parametrize(
    "pixels, kw, match",
    [
        (np.zeros((4, 6, 3), np.float32), {}, "dtype float32"),
        (np.zeros((4, 6, 2), np.uint8), {}, "cannot tell the layout"),
        (np.zeros((4, 6, 3), np.uint8), dict(layout="bgra"), r"needs an \(h, w, 4\)"),
        (np.zeros((4, 6, 3), np.uint8), dict(layout="yuv"), "layout must be one of"),
        (b"\0" * 72, dict(width=6, height=4, layout="bgr"), "layout= applies to arrays"),
    ],
)
def test_put_explains_what_it_cannot_convert(stream, pixels, kw, match):
    server, _, _ = stream
    with pytest.raises(shmimage.BadArgsError, match=match):
        server.put(1, pixels, **kw)


def test_put_takes_pil_images_and_frames_convert_to_pil(stream):
    Image = pytest.importorskip("PIL.Image")
    server, client, _ = stream
    rgb = pattern(2, 9, 5)
    img = Image.fromarray(rgb, "RGB")
    assert (received(server, client, 1, img) == rgb).all()
    rgba = Image.fromarray(np.concatenate([rgb, np.full((5, 9, 1), 9, np.uint8)], axis=2), "RGBA")
    assert (received(server, client, 2, rgba) == rgb).all()
    gray = img.convert("L")
    assert (received(server, client, 3, gray) == np.asarray(gray)[..., None]).all()
    server.put(4, rgb)
    with client.wait_frame(timeout=1.0) as frame:
        pil = frame.to_pil()
    assert pil.mode == "RGB" and pil.size == (9, 5)
    assert (np.asarray(pil) == rgb).all()


def test_repr_png_is_a_valid_png_of_the_frame(stream):
    server, client, _ = stream
    rgb = pattern(6, 7, 3)
    server.put(6, rgb)
    with client.wait_frame(timeout=1.0) as frame:
        data = frame._repr_png_()
        assert frame.bottom_up is False
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    Image = pytest.importorskip("PIL.Image")
    decoded = Image.open(io.BytesIO(data))
    assert decoded.size == (7, 3) and (np.asarray(decoded.convert("RGB")) == rgb).all()


# --- asyncio -----------------------------------------------------------------------


def test_wait_frame_async_does_not_block_the_loop(stream):
    server, client, _ = stream

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        t = asyncio.ensure_future(ticker())
        threading.Timer(0.3, server.put, (1, pattern(1, 8, 8))).start()
        frame = await client.wait_frame_async(timeout=5.0)
        t.cancel()
        with frame:
            assert frame.number == 1
        # The loop ran while the wait was blocked in another thread.
        assert ticks > 5, ticks
        with pytest.raises(shmimage.FrameTimeoutError):
            await client.wait_frame_async(timeout=0.05)

    asyncio.run(main())


def test_aframes_iterates_until_a_timeout(stream):
    server, client, _ = stream

    def push():
        for n in range(1, 4):
            server.put(n, pattern(n, 8, 8), timeout=2.0)
            time.sleep(0.05)

    async def main():
        threading.Thread(target=push).start()
        seen = []
        async for frame in client.aframes(timeout=1.0):
            assert np.asarray(frame)[0, 0, 0] == frame.number % 251
            seen.append(frame.number)
        return seen

    seen = asyncio.run(main())
    assert seen and seen[-1] == 3 and seen == sorted(seen)


def test_cancelling_wait_frame_async_ends_the_engine_wait(stream):
    server, client, _ = stream

    async def main():
        task = asyncio.ensure_future(client.wait_frame_async(None))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The worker thread's wait ended too: the client is usable at once.
        server.put(1, pattern(1, 8, 8))
        frame = await client.wait_frame_async(timeout=2.0)
        with frame:
            assert frame.number == 1

    asyncio.run(main())


# --- stubs and docstrings -----------------------------------------------------------


def test_the_stub_and_docstrings_cover_every_public_name():
    import ast
    import os

    import shmimage._native as native

    stub = os.path.join(os.path.dirname(shmimage.__file__), "_native.pyi")
    tree = ast.parse(open(stub).read())
    stubbed = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            stubbed[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.FunctionDef):
            stubbed[node.name] = set()
    missing = []
    for name in shmimage.__all__:
        obj = getattr(shmimage, name)
        if getattr(obj, "__module__", "").startswith("shmimage._errors") or not callable(obj):
            continue
        if getattr(obj, "__module__", "") == "shmimage._web":
            # Pure Python (typed inline, no stub): every public name documented.
            assert obj.__doc__, name
            for attr in dir(obj) if isinstance(obj, type) else ():
                if not attr.startswith("_") and not getattr(obj, attr).__doc__:
                    missing.append("{}.{} (no docstring)".format(name, attr))
            continue
        if name not in stubbed:
            missing.append(name)
            continue
        assert obj.__doc__, name
        if isinstance(obj, type):
            for attr in dir(obj):
                if attr.startswith("__") or attr == "_repr_png_" and attr in stubbed[name]:
                    continue
                if attr.startswith("_") and attr not in ("_repr_png_", "_cancel_waits"):
                    continue
                if attr not in stubbed[name]:
                    missing.append("{}.{}".format(name, attr))
                elif not getattr(obj, attr).__doc__:
                    missing.append("{}.{} (no docstring)".format(name, attr))
    assert not missing, missing
    assert native.Server.__doc__ and native.Client.wait_frame.__doc__
