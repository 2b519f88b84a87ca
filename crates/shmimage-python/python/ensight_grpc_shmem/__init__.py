"""Drop-in replacement for EnSight's ``ensight_grpc_shmem`` module.

Same names, values, signatures and results as the original C extension, backed
by the shmimage engine (see docs/python.md for the few deliberate differences).
Streams still open when the interpreter exits are destroyed.
"""

import atexit as _atexit

from shmimage._native import ensight as _impl

version = _impl.version
OPTIONS_NONE = _impl.OPTIONS_NONE
OPTIONS_SERVER = _impl.OPTIONS_SERVER
OPTIONS_FLIPVERTICAL = _impl.OPTIONS_FLIPVERTICAL
ERROR_NOERROR = _impl.ERROR_NOERROR
ERROR_NO_BUFFERAVAILABLE = _impl.ERROR_NO_BUFFERAVAILABLE
ERROR_NO_FRAMEAVAILABLE = _impl.ERROR_NO_FRAMEAVAILABLE
ERROR_RECONNECTING = _impl.ERROR_RECONNECTING
ERROR_UNCONNECTED = _impl.ERROR_UNCONNECTED

stream_create = _impl.stream_create
stream_lock = _impl.stream_lock
stream_unlock = _impl.stream_unlock
stream_putframe = _impl.stream_putframe
stream_destroy = _impl.stream_destroy

_atexit.register(_impl._destroy_all)

__all__ = [
    "version",
    "OPTIONS_NONE",
    "OPTIONS_SERVER",
    "OPTIONS_FLIPVERTICAL",
    "ERROR_NOERROR",
    "ERROR_NO_BUFFERAVAILABLE",
    "ERROR_NO_FRAMEAVAILABLE",
    "ERROR_RECONNECTING",
    "ERROR_UNCONNECTED",
    "stream_create",
    "stream_lock",
    "stream_unlock",
    "stream_putframe",
    "stream_destroy",
]
