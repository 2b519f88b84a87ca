from typing import Dict, Union

version: str
OPTIONS_NONE: int
OPTIONS_SERVER: int
OPTIONS_FLIPVERTICAL: int
ERROR_NOERROR: int
ERROR_NO_BUFFERAVAILABLE: int
ERROR_NO_FRAMEAVAILABLE: int
ERROR_RECONNECTING: int
ERROR_UNCONNECTED: int

def stream_create(filename: str, options: int = ...) -> int: ...
def stream_lock(stream_id: int) -> Union[Dict[str, Union[int, bytes]], int]: ...
def stream_unlock(stream_id: int) -> int: ...
def stream_putframe(stream_id: int, width: int, height: int, framenumber: int, pixeldata: object) -> int: ...
def stream_destroy(stream_id: int) -> int: ...
