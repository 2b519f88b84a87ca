"""The other end of a stream, run as a separate process by the tests.

    python peer.py dropin-server FILE WIDTH HEIGHT SECONDS
    python peer.py modern-server FILE WIDTH HEIGHT SECONDS
    python peer.py modern-client FILE COUNT

Prints 'ready' once the stream is open, then works; servers push frames as
fast as the client takes them until SECONDS have passed (forever if < 0) and
print how many they published.
"""

import sys
import time


def pattern(number, width, height):
    """A frame whose bytes depend on the frame number and the position."""
    import numpy as np

    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = number % 251
    img[..., 1] = (np.arange(width, dtype=np.uint32) % 256).astype(np.uint8)[None, :]
    img[..., 2] = (np.arange(height, dtype=np.uint32) % 256).astype(np.uint8)[:, None]
    return img


def dropin_server(path, width, height, seconds):
    import ensight_grpc_shmem as e

    s = e.stream_create(path, e.OPTIONS_SERVER)
    print("ready", flush=True)
    frames = [pattern(i, width, height).tobytes() for i in range(4)]
    end = time.monotonic() + seconds
    n, sent = 1, 0
    while seconds < 0 or time.monotonic() < end:
        rc = e.stream_putframe(s, width, height, n, frames[n % 4])
        if rc == e.ERROR_NOERROR:
            sent += 1
            n += 1
        else:
            time.sleep(0.0005)
    e.stream_destroy(s)
    print(sent)


def modern_server(path, width, height, seconds):
    import shmimage

    frames = [pattern(i, width, height) for i in range(4)]
    with shmimage.Server(path) as server:
        print("ready", flush=True)
        end = time.monotonic() + seconds
        n, sent = 1, 0
        while seconds < 0 or time.monotonic() < end:
            try:
                server.put(n, frames[n % 4], timeout=0.05)
                sent += 1
                n += 1
            except shmimage.UnconnectedError:
                server.wait_for_client(timeout=0.05)
            except shmimage.NoBufferAvailableError:
                pass
    print(sent)


def modern_client(path, count):
    import shmimage

    with shmimage.Client(path) as client:
        print("ready", flush=True)
        got = 0
        for frame in client.frames(timeout=5.0):
            got += 1
            if got == count:
                break
    print(got)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "dropin-server":
        dropin_server(args[0], int(args[1]), int(args[2]), float(args[3]))
    elif cmd == "modern-server":
        modern_server(args[0], int(args[1]), int(args[2]), float(args[3]))
    elif cmd == "modern-client":
        modern_client(args[0], int(args[1]))
    else:
        sys.exit("unknown command " + cmd)
