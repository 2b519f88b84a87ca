"""shmimage: shared-memory RGB image streams (EnSight protocol 1.0).

A server pushes frames into a stream file, a client reads them in place::

    import shmimage
    with shmimage.create_stream_file(1920, 1080) as f, \\
         shmimage.Server(f.path) as server, shmimage.Client(f.path) as client:
        server.put(1, image)                 # image: (1080, 1920, 3) uint8
        with client.wait_frame(timeout=1.0) as frame:
            total = frame.array().sum()      # zero-copy view of shared memory

See docs/python.md for the view-lifetime rules and the GIL notes.
"""

from ._errors import *  # noqa: F401,F403
from ._errors import __all__ as _error_names
from ._native import API_VERSION, __version__  # noqa: F401

__all__ = ["API_VERSION", "__version__", *_error_names]
