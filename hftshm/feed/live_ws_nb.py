"""numba kernel: whole websocket frames at the start of a socket read buffer (RFC 6455 section 5.2).

The live client hands every complete, unfragmented, unmasked text or binary frame a server sends
straight to its sink and everything else (pings, pongs, close, fragments, anything unusual) to the
``websockets`` library, whole; this kernel finds the frame boundaries of a buffer in one call, so a
socket read carrying hundreds of frames costs one kernel call instead of the library's Python
parser per frame.

    0        1        2 / 4 / 10 (+4 if masked)
    | FIN RSV1-3 opcode | MASK len7 | len16 or len64 | mask key | payload ...
"""

from __future__ import annotations

import numpy as np
from numba import njit

# split_frames' table columns, and the kinds of frames
F_START, F_PAYLOAD, F_STOP, F_KIND = 0, 1, 2, 3
N_FCOLS = 4
DATA = 0  # FIN, no RSV bits, text or binary, not masked: a whole message; its payload is the frame's
OTHER = 1  # anything else: the library's (control frames, fragments, masked or extension frames)


@njit(cache=True, nogil=True)
def split_frames(buf, n, table):
    """The complete frames at the start of ``buf[:n]`` (uint8), at most ``len(table)``: their
    (start, payload start, stop, kind) rows in ``table``. Returns (frames, bytes they take); the
    bytes after them are the start of a frame still arriving."""
    pos = 0
    k = 0
    while k < len(table) and n - pos >= 2:
        b0 = np.int64(buf[pos])
        b1 = np.int64(buf[pos + 1])
        length = b1 & 127
        head = 2
        if length == 126:
            if n - pos < 4:
                break
            length = (np.int64(buf[pos + 2]) << 8) | np.int64(buf[pos + 3])
            head = 4
        elif length == 127:
            if n - pos < 10:
                break
            length = 0
            for i in range(8):
                length = (length << 8) | np.int64(buf[pos + 2 + i])
            head = 10
        masked = (b1 & 128) != 0
        if masked:
            head += 4
        if length < 0 or n - pos - head < length:  # (a 64-bit length with the top bit set: never whole)
            break
        opcode = b0 & 15
        whole_data = (b0 & 0xF0) == 0x80 and (opcode == 1 or opcode == 2) and not masked
        table[k, F_START] = pos
        table[k, F_PAYLOAD] = pos + head
        table[k, F_STOP] = pos + head + length
        table[k, F_KIND] = DATA if whole_data else OTHER
        k += 1
        pos += head + length
    return k, pos


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernel before the first frame."""
    split_frames(np.zeros(4, np.uint8), 4, np.zeros((2, N_FCOLS), np.int64))
