"""Exceptions of the shmimage package: one base class, one subclass per
failure code of protocol 1.0 (``code`` holds EnSight's value)."""


class ShmImageError(Exception):
    """Base class of every shmimage error. ``code`` is the protocol's value."""

    code: int = 0


class UnconnectedError(ShmImageError):
    """No peer: no client is connected (server side), or the peer has gone."""

    code = 4


class ServerGoneError(UnconnectedError):
    """The client's server process has exited (noticed without any frame)."""


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
    """The object was closed (or its frame released) and cannot be used."""

    code = -1


__all__ = [
    "ShmImageError",
    "UnconnectedError",
    "ServerGoneError",
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
