"""The native stream through the same classes: Server and Client open either
format (detected from the file); frames say their format, stride,
timestamps, metadata and row order; array() is a zero-copy view shaped and
typed by the format; put() takes arrays of those shapes and dtypes."""

import time

import numpy as np
import pytest

import shmimage
from peer import pattern


@pytest.fixture
def native():
    """(server, client, file) on a native stream for 64x48 frames of any
    format up to 4 bytes per pixel."""
    f = shmimage.create_stream_file(64, 48, protocol="native", format="RGBA8")
    server = shmimage.Server(f)
    client = shmimage.Client(f)
    yield server, client, f
    client.close()
    server.close()
    f.close()


def roundtrip(server, client, pixels, **kw):
    server.put(0, pixels, **kw)
    return client.wait_frame(timeout=2.0)


def test_the_same_classes_open_either_format(native, stream_path):
    server, client, f = native
    assert (server.protocol, client.protocol) == ("native", "native")
    with shmimage.Server(stream_path(1 << 20)) as s1:
        assert s1.protocol == "ensight-1.0"
    # Many readers: a second client is welcome on a native stream.
    with shmimage.Client(f) as second:
        server.put(0, pattern(1, 64, 48))
        with second.wait_frame(timeout=2.0) as a, client.wait_frame(timeout=2.0) as b:
            assert a.number == b.number and (a.array() == b.array()).all()
    with pytest.raises(shmimage.PeerBusyError) as exc:
        shmimage.Server(f)
    assert exc.value.role == "server"


def test_frames_say_format_stride_timestamps_metadata_and_row_order(native):
    server, client, _ = native
    before = time.time_ns()
    img = pattern(3, 64, 48)
    with roundtrip(server, client, img, metadata=b'{"pose": [1, 2, 3]}', bottom_up=True) as frame:
        assert (frame.format, frame.width, frame.height, frame.stride) == ("RGB8", 64, 48, 64 * 3)
        assert frame.metadata == b'{"pose": [1, 2, 3]}'
        assert frame.bottom_up and frame.flags & 1
        ts = frame.timestamps
        assert set(ts) == {"capture_mono_ns", "capture_real_ns", "publish_mono_ns", "publish_real_ns"}
        assert ts["publish_real_ns"] >= before and ts["publish_mono_ns"] >= ts["capture_mono_ns"]
        assert frame.number >= 1
        # to_pil shows a bottom-up frame upright.
        pytest.importorskip("PIL")
        assert (np.asarray(frame.to_pil()) == img[::-1]).all()


def test_protocol_1_frames_answer_the_same_questions(stream_path):
    path = stream_path(1 << 20)
    with shmimage.Server(path) as server, shmimage.Client(path) as client:
        server.put(5, pattern(5, 8, 4))
        with client.wait_frame(timeout=1.0) as frame:
            assert (frame.format, frame.stride, frame.metadata, frame.timestamps) == ("RGB8", 24, b"", None)
            assert frame.bottom_up is False and frame.number == 5
        with pytest.raises(shmimage.BadArgsError, match="protocol 1.0 streams carry 8-bit RGB"):
            server.put(6, np.zeros((4, 8), np.uint16))


@pytest.mark.parametrize(
    "pixels, kw, fmt",
    [
        (pattern(1, 64, 48), {}, "RGB8"),
        (pattern(1, 64, 48), dict(layout="bgr"), "BGR8"),
        (np.arange(48 * 64 * 4, dtype=np.uint32).astype(np.uint8).reshape(48, 64, 4), {}, "RGBA8"),
        (np.arange(48 * 64 * 4, dtype=np.uint32).astype(np.uint8).reshape(48, 64, 4), dict(layout="bgrx"), "BGRX8"),
        (np.arange(48 * 64, dtype=np.uint32).astype(np.uint8).reshape(48, 64), {}, "GRAY8"),
        ((np.arange(48 * 64, dtype=np.uint32) * 13).astype(np.uint16).reshape(48, 64), {}, "GRAY16_LE"),
        (np.linspace(0.5, 9.5, 48 * 64, dtype=np.float32).reshape(48, 64), {}, "GRAY32F"),
    ],
)
def test_array_is_a_zero_copy_view_typed_and_shaped_by_format(native, pixels, kw, fmt):
    server, client, _ = native
    with roundtrip(server, client, pixels, **kw) as frame:
        assert frame.format == fmt
        a = frame.array()
        assert a.dtype == pixels.dtype and a.shape == pixels.shape
        assert (a == pixels).all() and not a.flags.writeable and not a.flags.owndata
        assert np.shares_memory(a, np.asarray(frame))
        assert (frame.copy() == pixels).all()
        assert frame.tobytes() == pixels.tobytes()
        assert frame._repr_png_()[:4] == b"\x89PNG"
        del a


def test_padded_rows_give_a_strided_view(native):
    server, client, _ = native
    w, h, stride = 10, 4, 64
    img = pattern(2, w, h)
    padded = np.zeros((h, stride), np.uint8)
    padded[:, : w * 3] = img.reshape(h, w * 3)
    with roundtrip(server, client, padded.tobytes(), format="RGB8", width=w, height=h, stride=stride) as frame:
        a = frame.array()
        assert frame.stride == stride and a.shape == (h, w, 3) and a.strides == (stride, 3, 1)
        assert not a.flags.c_contiguous and (a == img).all()
        assert frame.tobytes() == img.tobytes()  # rows without their padding
        del a


def test_planar_formats_are_their_planes(native):
    server, client, _ = native
    w, h = 64, 48
    y = np.full((h, w), 16, np.uint8)
    u = np.full((h // 2, w // 2), 128, np.uint8)
    v = np.full((h // 2, w // 2), 200, np.uint8)
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    with roundtrip(server, client, i420, format="I420", width=w, height=h) as frame:
        planes = frame.array()
        assert frame.format == "I420" and isinstance(planes, tuple) and len(planes) == 3
        assert [p.shape for p in planes] == [(h, w), (h // 2, w // 2), (h // 2, w // 2)]
        assert (planes[0] == 16).all() and (planes[1] == 128).all() and (planes[2] == 200).all()
        assert [p.shape for p in frame.planes()] == [p.shape for p in planes]
        del planes
    uv = np.zeros((h // 2, w // 2, 2), np.uint8)
    uv[..., 0], uv[..., 1] = 1, 2
    nv12 = np.concatenate([y.ravel(), uv.ravel()])
    with roundtrip(server, client, nv12, format="NV12", width=w, height=h) as frame:
        y2, uv2 = frame.array()
        assert uv2.shape == (h // 2, w // 2, 2) and (uv2[..., 1] == 2).all() and (y2 == 16).all()
        del y2, uv2


def test_native_misuse_is_refused_clearly(native):
    server, client, f = native
    with pytest.raises(shmimage.BadArgsError, match="item type"):
        server.put(0, np.zeros((4, 4), np.int64))
    with pytest.raises(shmimage.BadArgsError, match="do not make a"):
        server.put(0, np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(shmimage.BadArgsError, match="unknown pixel format"):
        server.put(0, b"\0" * 48, format="YUV9", width=4, height=4)
    with pytest.raises(shmimage.MetadataTooLargeError):
        server.put(0, pattern(1, 4, 4), metadata=b"x" * 100_000)
    with pytest.raises(shmimage.BadArgsError, match="protocol 1.0 feature"):
        server.wait_for_client(0)
    server.put(0, pattern(1, 4, 4))
    frame = client.wait_frame(timeout=2.0)
    client.close()
    with pytest.raises(shmimage.ClosedError):
        frame.array()
    frame.release()
    with pytest.raises(shmimage.ClosedError):
        client.wait_frame(0)
    with pytest.raises(shmimage.BadArgsError, match="protocol must be"):
        shmimage.create_stream_file(4, 4, protocol="v3")


def test_native_loans_are_zero_copy_in_the_format(native):
    server, client, _ = native
    w, h = 20, 10
    img = (np.arange(h * w, dtype=np.uint32) * 31).astype(np.uint16).reshape(h, w)
    with server.loan(w, h, format="GRAY16_LE") as loan:
        a = np.asarray(loan)
        assert loan.format == "GRAY16_LE" and a.dtype == np.uint16 and a.shape == (h, w)
        assert a.flags.writeable and a.strides[0] % 64 == 0  # rows padded as the engine lays them out
        a[...] = img
        del a
        loan.commit(metadata=b"depth", bottom_up=True)
    with client.wait_frame(timeout=2.0) as frame:
        got = frame.array()
        assert frame.format == "GRAY16_LE" and frame.metadata == b"depth" and frame.bottom_up
        assert (got == img).all() and frame.stride == got.strides[0]
        del got
    loan = server.loan(w, h, format="NV12")
    y, uv = loan.array()
    assert y.shape == (h, w) and uv.shape == (h // 2, w // 2, 2)
    del y, uv
    loan.abandon()
    server.close()
    with pytest.raises(shmimage.ClosedError):
        loan.array()
