"""Installing as a user would: the built wheel into a fresh virtualenv (no
numpy: it is the optional extra ``shmimage[numpy]``), and ``pip install`` of
the crate directory from a checkout.

scripts/test-python.sh sets SHMIMAGE_WHEEL (the wheel it built) and
SHMIMAGE_CRATE (the crate directory); without them these tests skip.
SHMIMAGE_MAX_GLIBC (e.g. 2.17 for the manylinux2014 build) makes the suite
check the glibc symbol versions the extension needs.
"""

import os
import re
import subprocess
import sys
import zipfile

import pytest

WHEEL = os.environ.get("SHMIMAGE_WHEEL")
CRATE = os.environ.get("SHMIMAGE_CRATE")

# Both modules import, the drop-in and the typed API move a frame between two
# processes' worth of objects, and arrays say how to get numpy.
SMOKE = r"""
import os, sys, tempfile
import ensight_grpc_shmem as e
import shmimage
assert e.version == "1.0" and e.OPTIONS_SERVER == 3
try:
    import numpy
    sys.exit("numpy should not be installed")
except ImportError:
    pass
with shmimage.create_stream_file(4, 2) as f:
    s = e.stream_create(f.path, e.OPTIONS_SERVER)
    c = e.stream_create(f.path)
    assert e.stream_putframe(s, 4, 2, 5, bytes(range(24))) == 0
    img = e.stream_lock(c)
    assert img["framenumber"] == 5 and img["pixeldata"] == bytes(range(24)), img
    e.stream_unlock(c); e.stream_destroy(c); e.stream_destroy(s)
    with shmimage.Server(f) as server, shmimage.Client(f) as client:
        server.put(6, bytes(24), width=4, height=2)
        with client.wait_frame(timeout=2.0) as frame:
            assert frame.tobytes() == bytes(24)
            try:
                frame.array()
                sys.exit("array() without numpy should raise")
            except ImportError as exc:
                assert "shmimage[numpy]" in str(exc), exc
print("ok")
"""


def venv(tmp_path):
    d = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
    return str(d / "bin" / "python")


def run(*cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, "{}\n{}\n{}".format(" ".join(cmd), r.stdout[-3000:], r.stderr[-3000:])
    return r.stdout


@pytest.mark.skipif(not WHEEL, reason="SHMIMAGE_WHEEL not set (run scripts/test-python.sh)")
def test_the_wheel_installs_offline_into_a_fresh_venv_without_numpy(tmp_path):
    py = venv(tmp_path)
    run(py, "-m", "pip", "install", "--quiet", "--no-index", WHEEL)
    assert run(py, "-c", SMOKE, cwd=str(tmp_path)).strip() == "ok"


@pytest.mark.skipif(not CRATE, reason="SHMIMAGE_CRATE not set (run scripts/test-python.sh)")
def test_pip_install_from_a_checkout(tmp_path):
    """`pip install ./crates/shmimage-python`: pip fetches maturin into its
    build environment and cargo compiles the extension (a Rust toolchain is
    the one prerequisite)."""
    py = venv(tmp_path)
    run(py, "-m", "pip", "install", "--quiet", CRATE)
    assert run(py, "-c", SMOKE, cwd=str(tmp_path)).strip() == "ok"


@pytest.mark.skipif(not (WHEEL and os.environ.get("SHMIMAGE_MAX_GLIBC")), reason="no glibc bound asked for")
def test_the_extension_needs_no_newer_glibc_than_the_wheel_tag_says(tmp_path):
    bound = tuple(int(x) for x in os.environ["SHMIMAGE_MAX_GLIBC"].split("."))
    with zipfile.ZipFile(WHEEL) as z:
        name = next(n for n in z.namelist() if n.endswith(".so"))
        so = z.extract(name, str(tmp_path))
    syms = run("objdump", "-T", so)
    versions = {tuple(int(x) for x in v.split(".")) for v in re.findall(r"GLIBC_([0-9.]+)", syms)}
    assert versions and max(versions) <= bound, sorted(versions)[-3:]
    tag = "manylinux_{}_{}".format(*bound)
    assert tag in os.path.basename(WHEEL), WHEEL
