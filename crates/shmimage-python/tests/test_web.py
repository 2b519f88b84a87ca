"""shmimage.show(): the live view for notebooks, tested without Jupyter by
checking the returned object and that its URL serves the page (the real
`shmimage web` binary runs; the browser side is tested in crates/shmimage-web)."""

import json
import os
import urllib.error
import urllib.request

import pytest

from shmimage._web import LiveView, show

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _binary():
    """The shmimage executable the Rust test run built (or $SHMIMAGE_BIN)."""
    if os.environ.get("SHMIMAGE_BIN"):
        return os.environ["SHMIMAGE_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    for profile in ("debug", "release"):
        p = os.path.join(target, profile, "shmimage")
        if os.path.isfile(p):
            return p
    pytest.skip("build the CLI first (cargo build -p shmimage-cli): no shmimage binary under " + target)


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode("utf-8")


def test_show_serves_the_live_page(tmp_path):
    stream = tmp_path / "cam.shm"
    view = show(stream, binary=_binary(), height=300)
    try:
        assert isinstance(view, LiveView)
        assert view.running
        assert view.url.startswith("http://127.0.0.1:") and view.url.endswith("/")
        frame = view._repr_html_()
        assert frame.startswith("<iframe") and 'src="{}"'.format(view.url) in frame and "height:300px" in frame
        status, page = _get(view.url)
        assert status == 200 and "<canvas" in page
        status, listing = _get(view.url + "api/streams")
        assert [s["name"] for s in json.loads(listing)] == ["cam.shm"]
    finally:
        view.close()
    assert not view.running
    with pytest.raises(urllib.error.URLError):
        _get(view.url)


class _HasPath:
    """Stands for a stream object (Client, Server): only its path is used."""

    def __init__(self, path):
        self.path = str(path)


def test_views_close_on_exit_of_the_with_block(tmp_path):
    with show(tmp_path / "a.shm", _HasPath(tmp_path / "b.shm"), binary=_binary(), quality=60, max_fps=10) as view:
        _, listing = _get(view.url + "api/streams")
        assert [s["name"] for s in json.loads(listing)] == ["a.shm", "b.shm"]
        pid = view.pid
    assert not view.running
    assert not os.path.exists("/proc/{}".format(pid)) or open("/proc/{}/stat".format(pid)).read().split()[2] == "Z"


def test_a_missing_binary_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SHMIMAGE_BIN", str(tmp_path / "nowhere" / "shmimage"))
    with pytest.raises(FileNotFoundError, match="SHMIMAGE_BIN"):
        show(tmp_path / "s.shm")
    monkeypatch.delenv("SHMIMAGE_BIN")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not on PATH"):
        show(tmp_path / "s.shm")


def test_a_server_that_cannot_start_says_why(tmp_path):
    with pytest.raises(RuntimeError, match="quality"):
        show(tmp_path / "s.shm", binary=_binary(), quality=500)
    with pytest.raises(ValueError):
        show(binary=_binary())


def test_the_command_needs_its_token_off_loopback(tmp_path):
    """`shmimage web --listen 0.0.0.0:0` prints a URL with a token; requests
    without it get 403 (reached through 127.0.0.1 only)."""
    import subprocess

    proc = subprocess.Popen(
        [_binary(), "web", "--listen", "0.0.0.0:0", "--exit-with-stdin", str(tmp_path / "s.shm")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = LiveView._read_url(proc, open(os.devnull, "rb"), 15.0)
        assert "/?token=" in url and len(url.split("token=")[1]) >= 32
        bare = url.split("?")[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(bare)
        assert refused.value.code == 403
        status, page = _get(url)
        assert status == 200 and "<canvas" in page
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == 0, "closing stdin stops the server cleanly"
