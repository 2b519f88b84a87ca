"""The drop-in's stream_lock of a banded 4K frame (issue 16): time and CPU
per frame, with the bands kept in place (one copy, into the bytes object) and
assembled first (two copies, as before), against a bytes copy of the same
24.9 MB in this process (the floor of a lock that returns bytes).

A 3840x2160 RGB frame does not fit one buffer of EnSight's 25 MiB file, so
it travels in two bands. A server process (shmimage.Server) puts frames as
fast as the client frees buffers. Each mode runs in its own client process
(SHMIMAGE_DROPIN_BANDS is read at stream_create), in turns, so a change of
load hits every mode. Per frame: the wall time of stream_lock, and the CPU
time of the client process (all its threads, the monitor thread's band
copies included) from one lock to the next. Usage (after
scripts/test-python.sh, or with shmimage installed):

    python crates/shmimage-python/bench/bench_banded.py [--frames 60] [--turns 3] [--markdown]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

W, H = 3840, 2160
FILE_LEN = 25 * 1024 * 1024
MODES = ["in place", "assembled", "in place, NOTHREADS", "assembled, NOTHREADS"]


def serve(path):
    import numpy as np

    import shmimage

    img = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    with shmimage.Server(path) as s:
        print("ready", flush=True)
        n = 0
        while True:
            if not s.wait_for_client(1.0):
                continue
            n += 1
            try:
                s.put(n, img, timeout=1.0)
            except shmimage.NoBufferAvailableError:
                pass
            except (shmimage.UnconnectedError, shmimage.ClosedError):
                continue


def client(path, frames, nothreads):
    import ensight_grpc_shmem as dropin

    c = dropin.stream_create(path, 2 if nothreads else 0)
    lock_ms, cpu_ms, got = [], [], 0
    deadline = time.monotonic() + 60
    cpu0 = time.process_time()
    while got < frames + 1 and time.monotonic() < deadline:
        t = time.perf_counter()
        img = dropin.stream_lock(c)
        dt = time.perf_counter() - t
        if type(img) is not dict:
            time.sleep(0.0002)
            continue
        assert len(img["pixeldata"]) == W * H * 3
        dropin.stream_unlock(c)
        cpu1 = time.process_time()
        if got:  # the first frame pays for the connection
            lock_ms.append(dt * 1e3)
            cpu_ms.append((cpu1 - cpu0) * 1e3)
        cpu0 = cpu1
        got += 1
    dropin.stream_destroy(c)
    src = bytearray(os.urandom(1 << 20)) * (W * H * 3 // (1 << 20) + 1)
    copy_ms = []
    for _ in range(max(5, frames // 4)):
        t = time.perf_counter()
        b = bytes(src)
        copy_ms.append((time.perf_counter() - t) * 1e3)
        del b
    print(statistics.median(lock_ms), statistics.median(cpu_ms), statistics.median(copy_ms), len(lock_ms))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="shmimage-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    path = os.path.join(d, "stream.bin")
    with open(path, "wb") as f:
        f.truncate(FILE_LEN)
    server = subprocess.Popen([sys.executable, __file__, "__serve", path], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        results = {m: [] for m in MODES}
        for _ in range(a.turns):
            for m in MODES:
                env = dict(os.environ, SHMIMAGE_DROPIN_BANDS="assemble" if m.startswith("assembled") else "in-place")
                out = subprocess.run(
                    [sys.executable, __file__, "__client", path, str(a.frames), "1" if "NOTHREADS" in m else "0"],
                    env=env, capture_output=True, text=True, check=True,
                ).stdout.split()
                results[m].append(tuple(float(x) for x in out[:3]))
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(d, ignore_errors=True)
    rows = []
    for m in MODES:
        lock = statistics.median(r[0] for r in results[m])
        cpu = statistics.median(r[1] for r in results[m])
        copy = statistics.median(r[2] for r in results[m])
        rows.append((m, lock, cpu, copy))
    base = {m: (lock, cpu) for m, lock, cpu, _ in rows}
    print(f"banded 4K drop-in stream_lock, 25 MiB file, medians of {a.turns} turns x {a.frames} frames")
    print("| mode | stream_lock ms | x bytes copy | client CPU ms per frame | x bytes copy | CPU vs assembled |")
    print("|---|---:|---:|---:|---:|---:|")
    for m, lock, cpu, copy in rows:
        other = m.replace("in place", "assembled") if m.startswith("in place") else m
        print(f"| {m} | {lock:.2f} | {lock / copy:.2f}x | {cpu:.2f} | {cpu / copy:.2f}x | {cpu / base[other][1]:.2f} |")
    if not a.markdown:
        print("(bytes copy of the same 24.9 MB in the client process: the floor of a lock that returns bytes)")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "__serve":
        serve(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == "__client":
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
    else:
        main()
