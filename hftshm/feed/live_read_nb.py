"""numba kernel: one socket read of a live connection, from its bytes to the rings, in one call.

The connection's ``data_received`` stamps the read and hands its buffer here before anything else
runs in Python::

    socket read ──> split_frames ──> "<receive ns> <payload>\\n" lines ──> step_lines ──> rings
                    (live_ws_nb)      (the recordings' line format)      (scanner, sync rule, rows,
                                                                          parser, books, publish)

Only a read whose whole frames are all unfragmented data frames, of trades, best bid/asks and depth
diffs that continue a live book, is taken, and then all of it; anything else (a ping, a close, a
fragment, a snapshot, a gap, a frame the scanner leaves to the JSON path, too many frames, not enough
room) leaves the buffer untouched and returns 0: the connection then splits the read in Python and
the frames take the queue and the import's code as before. So this is a shortcut for the steady
state, never a second set of rules: the frames split, the lines and the synchronisation are the
ones the queue's path would have produced and applied (tests compare the two).

Why: at the recorded pace a read carries one frame, and the Python between the read and the step
(the frame split into bytes objects, the queue, the lines joined, the step's bookkeeping: ~15 calls)
cost 30-50 us from cold caches, as much as the rest of the tick.
"""

from __future__ import annotations

from numba import njit

from hftshm.feed import binance_rows_nb as rows_nb
from hftshm.feed import live_publish_nb as publish_nb
from hftshm.feed import live_ws_nb as ws_nb

# counts after ``step_read`` (past ``live_publish_nb``'s): frames taken, their payload bytes
C_READ_FRAMES, C_READ_BYTES = publish_nb.N_LINE_COUNTS, publish_nb.N_LINE_COUNTS + 1
N_READ_COUNTS = publish_nb.N_LINE_COUNTS + 2
READ_LINE_BYTES = 1 << 20  # the lines a read becomes (a read that would need more takes the queue's path)


@njit(cache=True)
def step_read(buf, n, recv_ns, market, first_line_no, seq0, state, frames_table, lines_buf):
    """The whole frames at the start of ``buf[:n]`` (uint8), received at ``recv_ns``, to the rings
    (``live_publish_nb.step_lines``) if all of them can go; returns the bytes they took (0: nothing
    done, the buffer is the caller's as it was). ``counts`` then hold ``step_lines``' counts and the
    frames and payload bytes taken."""
    counts = state.tail[1]
    counts[C_READ_FRAMES] = 0
    counts[C_READ_BYTES] = 0
    counts[publish_nb.C_ROWS] = -1
    counts[publish_nb.C_NEED] = 0
    k, taken = ws_nb.split_frames(buf, n, frames_table)
    if k == 0 or k == len(frames_table):  # nothing whole yet, or maybe more than the table holds
        return 0
    pos = 0
    payload_bytes = 0
    for f in range(k):
        if frames_table[f, ws_nb.F_KIND] != ws_nb.DATA:
            return 0
        start = frames_table[f, ws_nb.F_PAYLOAD]
        stop = frames_table[f, ws_nb.F_STOP]
        if pos + 21 + (stop - start) >= len(lines_buf):
            return 0
        pos = rows_nb._put_int(lines_buf, pos, recv_ns)
        lines_buf[pos] = 32
        pos += 1
        for i in range(start, stop):
            c = buf[i]
            if c == 10:  # a raw line break inside a frame: not one recording line (the JSON path's)
                return 0
            lines_buf[pos] = c
            pos += 1
        lines_buf[pos] = 10
        pos += 1
        payload_bytes += stop - start
    publish_nb.step_lines(lines_buf[:pos], k, market, first_line_no, seq0, state)
    if counts[publish_nb.C_ROWS] < 0:
        return 0
    counts[C_READ_FRAMES] = k
    counts[C_READ_BYTES] = payload_bytes
    return taken
