"""Frames per second a client takes from a server pushing 1920x1080 RGB frames
as fast as it can, for each way of reading them:

  dropin stream_lock      ensight_grpc_shmem: a bytes copy per frame
  shmimage copy()         the modern API, copying into a numpy array
  shmimage view, xor      zero-copy view, every byte read (xor-reduce)
  shmimage view, no touch zero-copy view, pixels not read
  rust client, xor        the engine itself, every byte read
  rust client, no touch   the engine itself, pixels not read

The server is the Rust `bench_peer` example (zero-copy loans), so it is never
the bottleneck. Usage (after scripts/test-python.sh, or with shmimage
installed):

    python crates/shmimage-python/bench/bench_fps.py [--seconds 3] [--markdown]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import ensight_grpc_shmem as dropin
import shmimage

W, H = 1920, 1080
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))


def build_peer():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "-p", "shmimage-python", "--example", "bench_peer"],
        cwd=ROOT,
        check=True,
    )
    return os.path.join(target, "release", "examples", "bench_peer")


class Stream:
    """A fresh 25 MiB file (EnSight's size) with a server process on it."""

    def __init__(self, peer):
        self.dir = tempfile.mkdtemp(prefix="shmimage-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.path = os.path.join(self.dir, "stream.bin")
        with open(self.path, "wb") as f:
            f.truncate(25 * 1024 * 1024)
        self.proc = subprocess.Popen([peer, "server", self.path, str(W), str(H)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_dropin(path, seconds):
    c = dropin.stream_create(path)
    n, end = 0, time.monotonic() + seconds
    t0 = time.monotonic()
    while time.monotonic() < end:
        img = dropin.stream_lock(c)
        if type(img) is dict:
            n += 1
            dropin.stream_unlock(c)
    dt = time.monotonic() - t0
    dropin.stream_destroy(c)
    return n / dt


def xor_all(arr):
    """Read every byte (as u64 words). A function, so the view dies on return:
    the frame cannot be released while a view of it exists."""
    return int(np.bitwise_xor.reduce(arr.reshape(-1).view(np.uint64)))


def run_modern(path, seconds, how):
    with shmimage.Client(path) as client:
        n, sink = 0, 0
        t0 = time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            try:
                frame = client.wait_frame(timeout=0.1)
            except shmimage.FrameTimeoutError:
                continue
            with frame:
                if how == "copy":
                    sink ^= int(frame.copy()[0, 0, 0])
                elif how == "xor":
                    sink ^= xor_all(frame.array())
                else:
                    sink ^= frame.number
            n += 1
        return n / (time.monotonic() - t0)


def run_rust(peer, path, seconds, touch):
    out = subprocess.run(
        [peer, "client", path, str(seconds), "touch" if touch else "notouch"],
        capture_output=True,
        text=True,
        check=True,
    )
    frames, secs = out.stdout.split()[:2]
    return int(frames) / float(secs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="measuring time per case")
    ap.add_argument("--peer", help="path of a built bench_peer (default: build it with cargo)")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    peer = args.peer or build_peer()

    cases = [
        ("dropin stream_lock (bytes copy)", lambda p: run_dropin(p, args.seconds)),
        ("shmimage Frame.copy()", lambda p: run_modern(p, args.seconds, "copy")),
        ("shmimage Frame.array(), xor every byte", lambda p: run_modern(p, args.seconds, "xor")),
        ("shmimage Frame.array(), no touch", lambda p: run_modern(p, args.seconds, "none")),
        ("rust client, xor every byte", lambda p: run_rust(peer, p, args.seconds, True)),
        ("rust client, no touch", lambda p: run_rust(peer, p, args.seconds, False)),
    ]
    results = []
    for name, run in cases:
        with Stream(peer) as s:
            time.sleep(0.1)
            results.append((name, run(s.path)))
        print("{:<42} {:>9.1f} frames/s".format(name, results[-1][1]), file=sys.stderr)

    ref = dict(results)["rust client, xor every byte"]
    mb = W * H * 3 / 1e6
    print()
    if args.markdown:
        print("| reader (1920x1080 RGB, 6.2 MB/frame) | frames/s | GB/s | vs rust client (xor) |")
        print("|---|---:|---:|---:|")
        for name, fps in results:
            print("| {} | {:.0f} | {:.2f} | {:.2f} |".format(name, fps, fps * mb / 1000, fps / ref))
    else:
        for name, fps in results:
            print("{:<42} {:>8.0f} fps {:>6.2f} GB/s {:>6.2f}x".format(name, fps, fps * mb / 1000, fps / ref))


if __name__ == "__main__":
    main()
