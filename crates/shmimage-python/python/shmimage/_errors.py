"""Exceptions of the shmimage package: one base class, one subclass per
situation. ``code`` holds the engine's value for it, the same number the C
API returns (EnSight's codes, and the project's own from -100 down)."""


class ShmImageError(Exception):
    """Base class of every shmimage error. ``code`` is the protocol's value."""

    code: int = 0


class UnconnectedError(ShmImageError):
    """No peer: no client is connected (server side), or the peer has gone."""

    code = 4


class ServerGoneError(UnconnectedError):
    """The client's server process has exited (noticed without any frame)."""

    code = -104


class FileReplacedError(UnconnectedError):
    """The stream file was deleted or replaced by another file at its path:
    this stream no longer reaches its peer."""

    code = -105


class FileTruncatedError(UnconnectedError):
    """Another process shrank the stream file under this stream."""

    code = -106


class FileResizedError(UnconnectedError):
    """The stream file grew while this stream had it open: the two ends
    would disagree on the buffer size."""

    code = -107


class StreamResetError(UnconnectedError):
    """Another process reset the stream's buffers under this server."""

    code = -110


class PeerBusyError(ShmImageError):
    """A live peer already holds this role on the stream (a second server or
    client); ``role``, ``path`` and ``pid`` (None if unknown) say which."""

    code = -100
    role = None
    path = None
    pid = None


class ForkedError(ShmImageError):
    """The object was inherited across fork(): it is inert in the child.
    Open the stream again in the child."""

    code = -102


class NoSpaceError(ShmImageError, OSError):
    """The file system has no room for the stream file."""

    code = -103


class WaitCancelledError(ShmImageError):
    """The wait was cancelled (e.g. by cancelling the asyncio task)."""

    code = -109


class NoFrameAvailableError(ShmImageError):
    """No new complete frame is waiting (non-blocking lock)."""

    code = 2


class FrameTimeoutError(NoFrameAvailableError, TimeoutError):
    """No frame arrived before the timeout of a wait."""


class NoBufferAvailableError(ShmImageError):
    """The client holds both buffers: the frame was dropped (or a buffer wait
    timed out)."""

    code = 1


class BadArgsError(ShmImageError, ValueError):
    """An argument is invalid."""

    code = -1


class NotLockedError(ShmImageError):
    """Unlock without a locked frame."""

    code = -2


class BadFileSizeError(ShmImageError):
    """The stream file is missing or too small."""

    code = -3


class UnableToOpenFileError(ShmImageError, OSError):
    """The stream file cannot be opened read-write (or is not a regular file)."""

    code = -4


class UnableToMapFileError(ShmImageError, OSError):
    """The stream file cannot be memory-mapped."""

    code = -5


class MemoryAllocError(ShmImageError, MemoryError):
    """Memory for a frame could not be allocated."""

    code = -6


class ThreadCreateError(ShmImageError):
    """The client's monitor thread could not be started."""

    code = -7


class IsServerError(ShmImageError):
    """A client-only operation on a server stream."""

    code = -8


class IsNotServerError(ShmImageError):
    """A server-only operation on a client stream."""

    code = -9


class FrameTooLargeError(ShmImageError, ValueError):
    """The frame does not fit the stream file (one row, or a whole loan)."""

    code = -10


class LockedError(ShmImageError):
    """Not allowed while a frame is locked or a loan is open."""

    code = -11


class ClosedError(ShmImageError, ValueError):
    """The object was closed (or its frame released, or its stream closed)
    and cannot be used."""

    code = -101


class AlreadyExistsError(ShmImageError, FileExistsError):
    """A native stream file to be created exists already."""

    code = -200


class WrongProtocolError(ShmImageError):
    """The file is a stream of the other format than the opener speaks."""

    code = -201


class NotAStreamError(ShmImageError):
    """The file is not a stream this version can read (foreign, newer or
    corrupt); the message says which."""

    code = -202


class ReadersFullError(ShmImageError):
    """A native stream has no free reader entry left."""

    code = -205


class MetadataTooLargeError(ShmImageError, ValueError):
    """The frame's metadata does not fit the stream's metadata capacity."""

    code = -206


__all__ = [
    "ShmImageError",
    "UnconnectedError",
    "ServerGoneError",
    "FileReplacedError",
    "FileTruncatedError",
    "FileResizedError",
    "StreamResetError",
    "PeerBusyError",
    "ForkedError",
    "NoSpaceError",
    "WaitCancelledError",
    "AlreadyExistsError",
    "WrongProtocolError",
    "NotAStreamError",
    "ReadersFullError",
    "MetadataTooLargeError",
    "NoFrameAvailableError",
    "FrameTimeoutError",
    "NoBufferAvailableError",
    "BadArgsError",
    "NotLockedError",
    "BadFileSizeError",
    "UnableToOpenFileError",
    "UnableToMapFileError",
    "MemoryAllocError",
    "ThreadCreateError",
    "IsServerError",
    "IsNotServerError",
    "FrameTooLargeError",
    "LockedError",
    "ClosedError",
]
