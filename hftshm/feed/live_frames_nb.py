"""Kernels of the live frame ring (``live_frame`` records): raw websocket frames from the network
process to the feed, undecoded, through the project's SPSC ring (``transport.ring_nb``).

``write_frame`` (network process): one frame -> its records (472 payload bytes each), committed at
once, so the consumer never sees part of a frame. ``read_frames`` (feed): every whole frame
available -> one byte buffer plus (start, stop, receive ns, market, kind) per frame, records
released; each record's ``seq`` must equal its ring position (a mismatch is counted, not trusted).
"""

from __future__ import annotations

from numba import njit

from hftshm.transport import ring_nb

PAYLOAD = 472  # bytes of frame per record (layouts/live_frame.toml)
WRITTEN = 1
FULL = 0  # block ring: no room now (the caller counts the frame as dropped)

# read_frames' meta columns
M_START, M_STOP, M_RECV_NS, M_MARKET, M_KIND = 0, 1, 2, 3, 4
N_META = 5


@njit(cache=True, nogil=True)
def write_frame(ctrl, records, payload, recv_ns, market, kind):
    """Write ``payload`` (uint8) as one frame; WRITTEN, or FULL if the ring has no room for all of it."""
    n = len(payload)
    n_chunks = max((n + PAYLOAD - 1) // PAYLOAD, 1)
    seq = ring_nb.offer(ctrl, n_chunks)
    if seq < 0:
        return FULL
    for c in range(n_chunks):
        rec = records[ring_nb.slot(ctrl, seq + c)]
        lo = c * PAYLOAD
        hi = min(lo + PAYLOAD, n)
        rec.seq = seq + c
        rec.recv_ns = recv_ns
        rec.frame_len = n
        rec.chunk_len = hi - lo
        rec.kind = kind
        rec.market = market
        rec.chunk = c
        rec.n_chunks = n_chunks
        pl = rec.payload
        for i in range(hi - lo):
            pl[i] = payload[lo + i]
    ring_nb.commit(ctrl, seq, n_chunks)
    return WRITTEN


@njit(cache=True, nogil=True)
def read_frames(ctrl, records, max_frames, out, meta, counts):
    """Whole frames from the ring into ``out`` (bytes, back to back) and ``meta`` (N_META columns),
    up to ``max_frames`` or what fits in ``out``. counts: [0] frames, [1] bytes used, [2] sequence
    errors seen (records whose seq is not their ring position: skipped to the next frame start),
    [3] the length of a frame that did not fit (0 if none)."""
    counts[3] = 0
    available = ring_nb.try_poll(ctrl, 1 << 62)
    pos = ring_nb.consumer_position(ctrl)
    used = 0
    frames = 0
    errors = 0
    k = 0
    while k < available and frames < max_frames:
        rec = records[ring_nb.slot(ctrl, pos + k)]
        if rec.seq != pos + k or rec.chunk != 0 or rec.n_chunks < 1 or k + rec.n_chunks > available:
            errors += 1
            k += 1
            continue
        n = rec.frame_len
        if used + n > len(out):
            counts[3] = n  # the caller grows ``out`` if not even one frame fitted
            break
        n_chunks = rec.n_chunks
        ok = True
        at = used
        for c in range(n_chunks):
            part = records[ring_nb.slot(ctrl, pos + k + c)]
            if part.seq != pos + k + c or part.chunk != c:
                ok = False
                break
            pl = part.payload
            for i in range(part.chunk_len):
                out[at + i] = pl[i]
            at += part.chunk_len
        if not ok or at - used != n:
            errors += 1
            k += 1
            continue
        meta[frames, M_START] = used
        meta[frames, M_STOP] = at
        meta[frames, M_RECV_NS] = rec.recv_ns
        meta[frames, M_MARKET] = rec.market
        meta[frames, M_KIND] = rec.kind
        frames += 1
        used = at
        k += n_chunks
    if k:
        ring_nb.release(ctrl, k)
    counts[0] = frames
    counts[1] = used
    counts[2] = errors
    return frames
