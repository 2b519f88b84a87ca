"""Pixel conversions for writers and readers, in plain numpy/PIL.

Writers (``Server.put``) send an (h, w, 3) uint8 C-contiguous array as it is.
Anything else that holds an image is converted here with **one copy** into
that layout: BGR/BGRA/RGBA/RGBX arrays, gray images, non-contiguous arrays
(slices, transposes), PIL images. The copy goes straight into a fresh array;
``put`` then copies it into shared memory as it would any frame.

Readers: ``Frame.to_pil()`` and ``Frame._repr_png_()`` (Jupyter) are built on
``Frame.copy()`` / ``Frame.tobytes()``.
"""

import struct
import zlib

from ._errors import BadArgsError

# How each layout name maps the input's channels onto R, G, B.
_CHANNELS = {
    "rgb": (3, slice(0, 3)),
    "bgr": (3, slice(2, None, -1)),
    "rgba": (4, slice(0, 3)),
    "rgbx": (4, slice(0, 3)),
    "bgra": (4, slice(2, None, -1)),
    "bgrx": (4, slice(2, None, -1)),
}
LAYOUTS = ("rgb", "bgr", "rgba", "rgbx", "bgra", "bgrx", "gray")


def _numpy():
    try:
        import numpy
    except ImportError as e:  # pragma: no cover - numpy is in the test venv
        raise ImportError("numpy is needed to convert images (pip install 'shmimage[numpy]')") from e
    return numpy


def _is_pil(obj):
    # Duck-typed so PIL is never imported just to find out it is not used.
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "mode") and hasattr(obj, "convert")


def as_rgb(pixels, layout=None):
    """An (h, w, 3) uint8 C-contiguous array holding ``pixels`` as RGB.

    ``layout`` names the channel order of an array: ``"rgb"``, ``"bgr"``
    (OpenCV), ``"rgba"``, ``"rgbx"``, ``"bgra"``, ``"bgrx"`` or ``"gray"``;
    ``None`` infers it from the shape: (h, w) or (h, w, 1) is gray, (h, w, 3)
    RGB, (h, w, 4) RGBA. PIL images are converted by PIL to RGB (for modes
    other than RGB) and then copied once.
    """
    np = _numpy()
    if layout is not None and layout not in LAYOUTS:
        raise BadArgsError("layout must be one of {}, not {!r}".format(", ".join(LAYOUTS), layout))
    if _is_pil(pixels):
        if layout is not None:
            raise BadArgsError("layout= applies to arrays; a PIL image says its own mode ({})".format(pixels.mode))
        img = pixels if pixels.mode == "RGB" else pixels.convert("RGB")
        # PIL exports its pixels as one new bytes object: that is the copy.
        return np.ascontiguousarray(np.asarray(img), dtype=np.uint8)
    try:
        a = np.asarray(pixels)
    except Exception as e:
        raise BadArgsError("pixels must be an image: an array, a PIL image or a bytes-like object ({})".format(e))
    if a.dtype == object or a.ndim == 0:
        raise BadArgsError(
            "pixels must be an image: an (h, w, 3) uint8 array, another layout (see layout=), "
            "a PIL image, or a bytes-like object with width= and height=; got {!r}".format(type(pixels).__name__)
        )
    if a.dtype != np.uint8:
        raise BadArgsError(
            "pixels have dtype {}; protocol 1.0 streams carry 8-bit RGB: convert first "
            "(e.g. np.clip(a * 255, 0, 255).astype(np.uint8) for floats in 0..1)".format(a.dtype)
        )
    if layout is None:
        layout = _infer(a)
    if layout == "gray":
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        if a.ndim != 2:
            raise BadArgsError("a gray image is (h, w) or (h, w, 1), not {}".format(a.shape))
        out = np.empty(a.shape + (3,), np.uint8)
        out[...] = a[:, :, None]  # the one copy, broadcast into three channels
        return out
    channels, pick = _CHANNELS[layout]
    if a.ndim != 3 or a.shape[2] != channels:
        raise BadArgsError("layout {!r} needs an (h, w, {}) array, not {}".format(layout, channels, a.shape))
    view = a[:, :, pick]
    if view.flags.c_contiguous:
        return view
    return np.ascontiguousarray(view)  # the one copy


def _infer(a):
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1):
        return "gray"
    if a.ndim == 3 and a.shape[2] == 3:
        return "rgb"
    if a.ndim == 3 and a.shape[2] == 4:
        return "rgba"
    raise BadArgsError(
        "cannot tell the layout of an array of shape {}: pass (h, w), (h, w, 3) or (h, w, 4), "
        "or say layout=".format(a.shape)
    )


def rgb_bytes(frame):
    """The frame as packed top-down-as-stored RGB bytes (width * height * 3),
    for display: RGB8 as it is; other formats converted with numpy
    (channel order, alpha dropped, gray spread over R, G and B, GRAY16 shown
    by its high byte, GRAY32F scaled from its min..max, planar formats by
    their Y plane)."""
    fmt = getattr(frame, "format", "RGB8")
    if fmt == "RGB8" and frame.stride == frame.width * 3:
        return frame.tobytes()
    np = _numpy()
    a = frame.array()
    if isinstance(a, tuple):  # I420, NV12: the luma plane
        a = a[0]
    if fmt in ("BGR8",):
        a = a[..., ::-1]
    elif fmt in ("RGBA8", "RGBX8", "RGB8"):
        a = a[..., :3]
    elif fmt in ("BGRA8", "BGRX8"):
        a = a[..., 2::-1]
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype == np.float32:
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        a = np.nan_to_num((a - lo) * scale).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a, dtype=np.uint8).tobytes()


def to_pil(frame):
    """The frame as a new PIL image (a copy, RGB), upright: bottom-up frames
    are flipped so the image shows the right way up."""
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("Pillow is needed for Frame.to_pil() (pip install pillow)") from e
    img = Image.frombytes("RGB", (frame.width, frame.height), rgb_bytes(frame))
    if frame.bottom_up:
        img = img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return img


def png(frame):
    """The frame encoded as PNG bytes, with no dependency beyond zlib (and
    numpy for formats other than RGB8), for Jupyter's ``_repr_png_``."""
    w, h = frame.width, frame.height
    data = rgb_bytes(frame)
    row = w * 3
    rows = range(h - 1, -1, -1) if frame.bottom_up else range(h)
    # Filter type 0 (none) before each row.
    raw = b"".join(b"\0" + data[r * row : (r + 1) * row] for r in rows)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit truecolor
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
