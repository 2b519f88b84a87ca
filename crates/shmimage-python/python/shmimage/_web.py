"""Live view of streams in a browser or inline in a Jupyter notebook.

``show(path)`` starts ``shmimage web`` (the command-line tool) on a free
loopback port and returns a :class:`LiveView`; as the last expression of a
notebook cell it displays the live stream inline (an iframe)::

    import shmimage
    shmimage.show("/dev/shm/stream.shm")

The server is one reader of the stream however many views are open, reads
only while a view is shown, and stops when the view is closed, garbage
collected, or this Python process exits. See docs/web.md.
"""

import html
import os
import selectors
import shutil
import subprocess
import tempfile
import time
import weakref
from typing import IO, Optional, Union

_Path = Union[str, "os.PathLike[str]"]

__all__ = ["LiveView", "show"]

_BINARY_ENV = "SHMIMAGE_BIN"


def _find_binary(binary: Optional[str] = None) -> str:
    """The ``shmimage`` executable: the argument, $SHMIMAGE_BIN, or on PATH."""
    candidate = binary or os.environ.get(_BINARY_ENV)
    if candidate:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
        raise FileNotFoundError(
            "the shmimage command-line tool was not found at {!r} (from {}); "
            "build it with 'cargo build --release -p shmimage-cli'".format(
                candidate, "the binary argument" if binary else "$" + _BINARY_ENV
            )
        )
    found = shutil.which("shmimage")
    if found:
        return found
    raise FileNotFoundError(
        "the shmimage command-line tool is not on PATH; install it "
        "('cargo install --path crates/shmimage-cli') or set ${} to its path".format(_BINARY_ENV)
    )


def _stop(proc: "subprocess.Popen[bytes]", log: IO[bytes]) -> None:
    """Stop the server (closing its stdin asks it to exit) and reap it."""
    if proc.poll() is None:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for f in (proc.stdout, proc.stdin):
        try:
            f.close()
        except OSError:
            pass
    log.close()


class LiveView:
    """A running ``shmimage web`` server for some streams, shown as an iframe.

    Attributes: ``url`` (open it in any browser on this machine), ``pid``.
    Use ``close()`` (or ``with``) to stop it; it also stops when garbage
    collected and when this process exits.
    """

    def __init__(
        self,
        *paths: _Path,
        quality: Optional[int] = None,
        max_fps: Optional[float] = None,
        width: Union[int, str] = "100%",
        height: Union[int, str] = 480,
        binary: Optional[str] = None,
        timeout: float = 15.0,
    ) -> None:
        if not paths:
            raise ValueError("show() needs at least one stream path (or a directory of streams)")
        exe = _find_binary(binary)
        args = [exe, "web", "--listen", "127.0.0.1:0", "--exit-with-stdin"]
        if quality is not None:
            args += ["--quality", str(int(quality))]
        if max_fps is not None:
            args += ["--max-fps", str(float(max_fps))]
        # A Client, Server or Reader object stands for its stream file.
        args += ["--"] + [os.path.abspath(os.fspath(getattr(p, "path", p))) for p in paths]
        self.width = width
        self.height = height
        log = tempfile.TemporaryFile()
        # stdin stays open for the server's lifetime: when this process dies
        # the pipe closes and the server exits (--exit-with-stdin).
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        self._proc = proc
        self._finalizer = weakref.finalize(self, _stop, proc, log)
        try:
            self.url = self._read_url(proc, log, timeout)
        except BaseException:
            self._finalizer()
            raise

    @staticmethod
    def _read_url(proc: "subprocess.Popen[bytes]", log: IO[bytes], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        line = b""
        try:
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError("shmimage web did not print its URL within {:.0f} s".format(timeout))
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    proc.wait(timeout=5)
                    log.seek(0)
                    why = log.read().decode("utf-8", "replace").strip()
                    raise RuntimeError("shmimage web exited ({}): {}".format(proc.returncode, why or "no message"))
                line += chunk
        finally:
            sel.close()
        return line.decode("utf-8").strip()

    @property
    def pid(self) -> int:
        """The server process id."""
        return self._proc.pid

    @property
    def running(self) -> bool:
        """True while the server runs."""
        return self._proc.poll() is None

    def close(self) -> None:
        """Stop the server (the iframe then shows nothing new)."""
        self._finalizer()

    def __enter__(self) -> "LiveView":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _repr_html_(self) -> str:
        w = self.width if isinstance(self.width, str) else "{}px".format(int(self.width))
        h = self.height if isinstance(self.height, str) else "{}px".format(int(self.height))
        return '<iframe src="{}" style="width:{};height:{};border:0" title="shmimage live view"></iframe>'.format(
            html.escape(self.url, quote=True), html.escape(w, quote=True), html.escape(h, quote=True)
        )

    def __repr__(self) -> str:
        return "<shmimage.LiveView {} {}>".format(self.url, "running" if self.running else "closed")


def show(
    *paths: _Path,
    quality: Optional[int] = None,
    max_fps: Optional[float] = None,
    width: Union[int, str] = "100%",
    height: Union[int, str] = 480,
    binary: Optional[str] = None,
    timeout: float = 15.0,
) -> LiveView:
    """Serve ``paths`` (stream files, directories of them, or stream objects
    with a ``path`` such as a ``Client``) with ``shmimage web`` and return a
    :class:`LiveView`, which Jupyter displays inline.

    Options: ``quality`` (JPEG, 1-100), ``max_fps``, ``width`` and ``height``
    of the iframe (pixels or CSS text), ``binary`` (the ``shmimage``
    executable; default $SHMIMAGE_BIN or PATH), ``timeout`` (seconds to wait
    for the server to start). Raises FileNotFoundError when the executable
    cannot be found and RuntimeError when the server cannot start.
    """
    return LiveView(
        *paths, quality=quality, max_fps=max_fps, width=width, height=height, binary=binary, timeout=timeout
    )
