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

def create_stream_file(max_width: int, max_height: int) -> StreamFile:
    """Make a stream file for frames up to ``max_width`` x ``max_height``
    (read in place, in one piece). Its pages are reserved at once: a full
    file system raises NoSpaceError here, not later."""

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
    def is_open(self) -> bool:
        """True until committed or abandoned, and while the server is open."""
    def array(self) -> _Pixels:
        """A writable (height, width, 3) uint8 view of the buffer (no copy).
        Delete every view before commit()/abandon(), which refuse with
        BufferError otherwise."""
    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> _Pixels:
        """``np.asarray(loan)`` is ``loan.array()``."""
    def commit(self, frame_number: int) -> None:
        """Publish the frame (ClosedError once ended or the server closed)."""
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
    ) -> None:
        """Publish one frame. ``pixels``: an (h, w, 3) uint8 C-contiguous
        array (sent as is), a bytes-like object with ``width`` and
        ``height``, or another image converted to RGB with one copy: a PIL
        image, a gray (h, w) array, RGBA/BGR/BGRA (``layout``), strided
        arrays. With ``timeout`` > 0, wait that long for a free buffer.
        NoBufferAvailableError: the client holds both buffers (frame dropped);
        UnconnectedError: no client."""
    def loan(self, width: int, height: int) -> Loan:
        """Borrow a free buffer to draw a whole frame into (no copy)."""
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
        """Payload bytes of one buffer."""
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
        """The server's frame number."""
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
    def array(self) -> _Pixels:
        """A read-only (height, width, 3) uint8 view of the pixels (no copy).
        release() refuses with BufferError while views exist."""
    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> _Pixels:
        """``np.asarray(frame)`` is ``frame.array()``; ``np.array(frame)`` a copy."""
    def copy(self) -> _Pixels:
        """A writable copy that outlives the frame."""
    def tobytes(self) -> bytes:
        """The pixels as bytes (a copy)."""
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

    def __init__(self, path: _Path, *, monitor_thread: bool = True) -> None:
        """Open a stream file as its client and connect."""
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
