# Typed stub of the native module (hand-written; keep in sync with src/*.rs).
"""The compiled core of the package ``shmimage`` (see docs/python.md).

Timeouts are seconds: ``None`` waits forever (still ended by ``close()``
from any thread, by Ctrl-C on the main thread, or by cancelling an asyncio
task), ``0`` just looks. Every blocking call releases the GIL.
"""

import os
from types import ModuleType, TracebackType
from typing import Any, AsyncIterator, Awaitable, Dict, Iterator, Literal, Optional, Type, Union

import numpy as np
import numpy.typing as npt

__version__: str
API_VERSION: str
ensight: ModuleType

_Path = Union[str, "os.PathLike[str]"]
_Liveness = Literal["alive", "gone", "unknown"]
_Pixels = npt.NDArray[np.uint8]
_Layout = Literal["rgb", "bgr", "rgba", "rgbx", "bgra", "bgrx", "gray"]
_Array = Union[npt.NDArray[Any], tuple]

class StreamFile(os.PathLike):
    """A stream file this process made (in a private directory under
    /dev/shm). ``close()`` removes it; so does interpreter exit, even with a
    daemon thread alive. A fork child never removes its parent's file."""

    @property
    def path(self) -> str:
        """The file's path."""
    @property
    def closed(self) -> bool:
        """True once removed."""
    def __fspath__(self) -> str: ...
    def close(self) -> None:
        """Remove the file and its directory; streams already open keep
        working on the unlinked file. Idempotent."""
    def __enter__(self) -> "StreamFile": ...
    def __exit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> bool: ...

def create_stream_file(
    max_width: int,
    max_height: int,
    *,
    protocol: Literal["ensight-1.0", "native"] = "ensight-1.0",
    format: str = "RGB8",
    slots: int = 4,
    metadata_bytes: int = 4096,
) -> StreamFile:
    """Make a stream file for frames up to ``max_width`` x ``max_height``
    (read in place, in one piece). Protocol 1.0 (EnSight's, RGB8, one
    client): its pages are reserved at once, so a full file system raises
    NoSpaceError here, not later. ``protocol="native"``: many readers, any
    ``format``, ``slots`` slots, per-frame metadata up to ``metadata_bytes``."""

def _close_stream_files() -> None:
    """Remove every stream file this process made and did not close (atexit)."""

class Loan:
    """A free buffer lent by a Server: draw the frame into ``array()`` (or
    ``np.asarray(loan)``), then ``commit(frame_number)``. Leaving a ``with``
    block without committing, or ``abandon()``, gives it back unpublished.
    After the server is closed every use raises ClosedError."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def format(self) -> str:
        """The pixel format's name ("RGB8" for protocol 1.0)."""
    @property
    def is_open(self) -> bool:
        """True until committed or abandoned, and while the server is open."""
    def array(self) -> _Array:
        """A writable view of the buffer (no copy): (height, width, 3) uint8
        for 1.0, shaped by the format on native streams.
        Delete every view before commit()/abandon(), which refuse with
        BufferError otherwise."""
    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> _Pixels:
        """``np.asarray(loan)`` is ``loan.array()``."""
    def commit(self, frame_number: int = 0, *, metadata: Optional[bytes] = None, bottom_up: bool = False) -> None:
        """Publish the frame (ClosedError once ended or the server closed).
        Native streams number frames themselves and take ``metadata`` and
        ``bottom_up`` with the frame."""
    def abandon(self) -> None:
        """Give the buffer back unpublished."""
    def __enter__(self) -> "Loan": ...
    def __exit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> bool: ...

class Server:
    """The producing end of a stream. One live server per stream file
    (PeerBusyError otherwise). Usable from any thread; close() from any
    thread ends a wait in progress at once with ClosedError."""

    def __init__(self, path: _Path, flip_vertical: bool = False) -> None:
        """Open an existing stream file as its server (resets both buffers).
        ``flip_vertical`` stores rows bottom-up relative to the input."""
    def put(
        self,
        frame_number: int,
        pixels: Any,
        *,
        width: Optional[int] = None,
        height: Optional[int] = None,
        timeout: float = 0.0,
        layout: Optional[_Layout] = None,
        format: Optional[str] = None,
        metadata: Optional[bytes] = None,
        bottom_up: bool = False,
        stride: Optional[int] = None,
    ) -> None:
        """Publish one frame. ``pixels``: an (h, w, 3) uint8 C-contiguous
        array (sent as is), a bytes-like object with ``width`` and
        ``height``, or another image converted to RGB with one copy: a PIL
        image, a gray (h, w) array, RGBA/BGR/BGRA (``layout``), strided
        arrays. With ``timeout`` > 0, wait that long for a free buffer.
        NoBufferAvailableError: the client holds both buffers (frame dropped);
        UnconnectedError: no client. Native streams: the format comes from
        the array's shape and dtype (or ``format`` with a buffer, width,
        height and optional ``stride``); ``metadata`` and ``bottom_up``
        travel with the frame; ``frame_number`` is ignored (the stream
        numbers frames)."""
    def loan(self, width: int, height: int, *, format: Optional[str] = None, timeout: Optional[float] = None) -> Loan:
        """Borrow a free buffer to draw a whole frame into (no copy). Native
        streams: ``format`` (default RGB8) and ``timeout`` for a free slot."""
    def wait_for_client(self, timeout: Optional[float] = None) -> bool:
        """Wait until a client is connected; False on timeout."""
    def wait_for_buffer(self, timeout: Optional[float] = None) -> bool:
        """Wait until a buffer is free; False on timeout."""
    @property
    def is_connected(self) -> bool:
        """True while a client is connected."""
    def is_client_alive(self) -> bool:
        """False only when the client process is known to have gone."""
    def client_liveness(self) -> _Liveness: ...
    @property
    def capacity(self) -> int:
        """Payload bytes of one buffer (one slot on native streams)."""
    @property
    def protocol(self) -> Literal["ensight-1.0", "native"]:
        """The stream file's format."""
    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def stats(self) -> Dict[str, int]:
        """frames_sent, frames_dropped, frames_unconnected, frames_abandoned,
        bands_sent, clients_reclaimed."""
    def close(self) -> None:
        """Close from any thread (waits end with ClosedError, an open loan is
        given back). BufferError while views of an open loan exist.
        Idempotent; in a fork child it touches nothing of the parent's."""
    def __enter__(self) -> "Server": ...
    def __exit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> bool: ...

class Frame:
    """A locked frame. Its pixels are the stream's memory (no copy) until
    released; release(), the end of a ``with`` block and ``frames()`` give it
    back. After the client is closed every use raises ClosedError."""

    @property
    def number(self) -> int:
        """The server's frame number (1.0), the sequence number (native)."""
    @property
    def format(self) -> str:
        """"RGB8" for 1.0; any engine format name on native streams."""
    @property
    def stride(self) -> int:
        """Bytes from one row to the next (plane 0)."""
    @property
    def timestamps(self) -> Optional[Dict[str, int]]:
        """capture/publish times in ns (monotonic and wall clock); None for 1.0."""
    @property
    def metadata(self) -> bytes:
        """The writer's metadata for this frame (b"" for 1.0)."""
    @property
    def flags(self) -> int:
        """The native frame's flags word (0 for 1.0)."""
    @property
    def missed_before(self) -> int:
        """Frames skipped since the previous read (native streams)."""
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def in_place(self) -> bool:
        """False for a frame larger than one buffer, assembled in this
        process's memory."""
    @property
    def nbytes(self) -> int:
        """width * height * 3."""
    @property
    def released(self) -> bool: ...
    @property
    def bottom_up(self) -> bool:
        """True when rows are stored bottom-up. Protocol 1.0 has no such flag:
        always False there."""
    def array(self) -> _Array:
        """A read-only view of the pixels (no copy), shaped and typed by the
        format: (h, w, 3) uint8 for RGB8, (h, w, 4) for 4-channel formats,
        (h, w) uint8/uint16/float32 for GRAY8/GRAY16_LE/GRAY32F, strided when
        rows are padded; a tuple of planes for I420/NV12. release() refuses
        with BufferError while views exist."""
    def planes(self) -> list:
        """The planes as views (one for packed formats)."""
    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> _Array:
        """``np.asarray(frame)`` is ``frame.array()``; ``np.array(frame)`` a copy."""
    def copy(self) -> _Array:
        """A writable copy that outlives the frame."""
    def tobytes(self) -> bytes:
        """The pixels as bytes (a copy; rows unpadded, planes in order)."""
    def to_pil(self) -> Any:
        """A new PIL.Image (RGB, upright); needs Pillow."""
    def _repr_png_(self) -> bytes:
        """PNG bytes, for Jupyter (no Pillow needed)."""
    def release(self) -> None:
        """Give the frame back (BufferError while views exist). Idempotent."""
    def __enter__(self) -> "Frame": ...
    def __exit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> bool: ...

class Client:
    """The consuming end of a stream. One live client per stream file
    (PeerBusyError otherwise). Usable from any thread; close() from any
    thread ends a wait in progress at once with ClosedError. Up to two
    frames may be held at once (LockedError for a third)."""

    def __init__(self, path: _Path, *, monitor_thread: bool = True, lossless: bool = False) -> None:
        """Open a stream file (either format) as its client. ``lossless``
        (native streams): every frame in order instead of the newest."""
    def wait_frame(self, timeout: Optional[float] = None) -> Frame:
        """Wait for the newest frame and lock it. FrameTimeoutError (a
        TimeoutError) on timeout, ServerGoneError when the server exited,
        ClosedError when closed meanwhile."""
    def lock(self) -> Frame:
        """Lock the newest frame if one waits; NoFrameAvailableError if not."""
    def frames(self, timeout: Optional[float] = None) -> Iterator[Frame]:
        """Frames as they arrive; ``for f in client.frames(): img = f.array()``
        works zero-copy (a frame with live views stays locked until they are
        gone). Ends on timeout or when the server has gone."""
    def wait_frame_async(self, timeout: Optional[float] = None) -> Awaitable[Frame]:
        """``await`` form of wait_frame for asyncio: the loop keeps running,
        cancelling the task ends the wait."""
    def aframes(self, timeout: Optional[float] = None) -> AsyncIterator[Frame]:
        """``async for`` form of frames()."""
    def _cancel_waits(self) -> None:
        """End every wait in progress (WaitCancelledError)."""
    def is_server_alive(self) -> bool:
        """False only when the server process is known to have exited."""
    def server_liveness(self) -> _Liveness: ...
    @property
    def reconnected(self) -> bool:
        """True when the file already carried a stream at connect."""
    @property
    def protocol(self) -> Literal["ensight-1.0", "native"]:
        """The stream file's format."""
    @property
    def path(self) -> str: ...
    @property
    def capacity(self) -> int:
        """Payload bytes of one buffer."""
    @property
    def closed(self) -> bool: ...
    def stats(self) -> Dict[str, int]:
        """frames_locked, frames_stale, frames_partial, bands_assembled,
        corrupt_headers, reconnects."""
    def close(self) -> None:
        """Disconnect, from any thread. Idempotent; in a fork child it
        touches nothing of the parent's."""
    def __enter__(self) -> "Client": ...
    def __exit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> bool: ...
