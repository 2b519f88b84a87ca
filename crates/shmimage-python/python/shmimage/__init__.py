"""shmimage: shared-memory RGB image streams (EnSight protocol 1.0).

A server pushes frames into a stream file, a client reads them in place::

    import numpy as np
    import shmimage

    with shmimage.create_stream_file(1920, 1080) as f, \\
            shmimage.Server(f.path) as server, shmimage.Client(f.path) as client:
        server.put(1, np.zeros((1080, 1920, 3), np.uint8))
        with client.wait_frame(timeout=1.0) as frame:
            print(frame.number, frame.array().mean())  # zero-copy view

Views returned by ``Frame.array()`` and ``Loan.array()`` point into shared
memory: delete them before the frame is released or the loan committed (those
refuse with BufferError otherwise), or keep a ``.copy()``. See docs/python.md.
"""

import atexit as _atexit

from ._errors import *  # noqa: F401,F403
from ._errors import __all__ as _error_names
from ._native import (
    API_VERSION,
    Client,
    Frame,
    Loan,
    Server,
    StreamFile,
    __version__,
    create_stream_file,
)
from ._native import _close_stream_files
from ._web import LiveView, show

# Stream files made by create_stream_file() and never closed are removed at
# exit, even when a daemon thread (or a global) still holds them.
_atexit.register(_close_stream_files)

__all__ = [
    "API_VERSION",
    "Client",
    "Frame",
    "LiveView",
    "Loan",
    "Server",
    "StreamFile",
    "__version__",
    "create_stream_file",
    "show",
    *_error_names,
]
