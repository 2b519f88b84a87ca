"""asyncio faces of the blocking waits: ``Client.wait_frame_async`` and
``Client.aframes``.

The engine's wait runs in the event loop's default executor (a worker
thread, GIL released), so the loop keeps running. Cancelling the awaiting
task cancels the engine wait too (``Client._cancel_waits``), so no worker
thread stays blocked; a frame that arrived at that very moment is released.
"""

import asyncio

from ._errors import FrameTimeoutError, ServerGoneError


async def wait_frame_async(client, timeout=None):
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, client.wait_frame, timeout)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        client._cancel_waits()
        fut.add_done_callback(_release_unclaimed)
        raise


def _release_unclaimed(fut):
    # The wait may have won the race with the cancellation: give that frame
    # back (its views cannot exist, nobody saw it).
    if fut.cancelled() or fut.exception() is not None:
        return
    try:
        fut.result().release()
    except Exception:
        pass


async def aframes(client, timeout=None):
    prev = None
    try:
        while True:
            if prev is not None:
                _let_go(prev)
                prev = None
            try:
                frame = await wait_frame_async(client, timeout)
            except (FrameTimeoutError, ServerGoneError):
                return
            prev = frame
            yield frame
    finally:
        if prev is not None:
            _let_go(prev)


def _let_go(frame):
    # As client.frames() does: release the previous frame, or, while numpy
    # views of it live, leave it to them (it is released with the last one).
    try:
        frame.release()
    except BufferError:
        pass
