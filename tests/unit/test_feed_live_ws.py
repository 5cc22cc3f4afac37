"""The live client's websocket frame splitter (hftshm.feed.live_ws_nb): every whole frame at the start
of a buffer, with its payload's bounds; whole unmasked text/binary frames are DATA, every other frame
(control, fragment, masked, extension bits) OTHER; a frame still arriving is left for the next read."""

from __future__ import annotations

import numpy as np

from hftshm.feed import live_ws_nb as wsnb


def frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bytes | None = None, rsv: int = 0) -> bytes:
    """RFC 6455 framing, written out plainly (the statement of what the kernel must read)."""
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    n = len(payload)
    m = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((b0, m | n))
    elif n < 1 << 16:
        head = bytes((b0, m | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, m | 127)) + n.to_bytes(8, "big")
    if mask is not None:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += mask
    return head + payload


def split(data: bytes, max_frames: int = 64):
    table = np.zeros((max_frames, wsnb.N_FCOLS), np.int64)
    n, taken = wsnb.split_frames(np.frombuffer(data, np.uint8), len(data), table)
    return [(data[p:e], int(kind)) for _, p, e, kind in table[:n].tolist()], taken


def test_frames_of_every_length_encoding_split_whole_with_their_payloads():
    payloads = [b"", b"x", b"a" * 125, b"b" * 126, b"c" * 65535, b"d" * 65536, b'{"stream":"btcusdt@trade"}']
    data = b"".join(frame(p, opcode=1 + k % 2) for k, p in enumerate(payloads))
    frames, taken = split(data)
    assert taken == len(data)
    assert frames == [(p, wsnb.DATA) for p in payloads]


def test_control_fragmented_masked_and_extension_frames_are_other():
    parts = [frame(b"ping", opcode=9), frame(b"start", fin=False), frame(b"end", opcode=0),
             frame(b"masked", mask=b"\x01\x02\x03\x04"), frame(b"rsv1", rsv=4), frame(b"\x03\xe8", opcode=8),
             frame(b"data")]
    frames, taken = split(b"".join(parts))
    assert taken == sum(map(len, parts))
    assert [k for _, k in frames] == [wsnb.OTHER] * 6 + [wsnb.DATA]
    assert frames[-1][0] == b"data"


def test_a_frame_still_arriving_is_left_whole_for_the_next_read():
    whole = frame(b"first")
    for partial in (frame(b"z" * 300)[:1], frame(b"z" * 300)[:3], frame(b"z" * 70000)[:9], frame(b"z" * 300)[:-1],
                    frame(b"q", mask=b"abcd")[:5]):
        frames, taken = split(whole + partial)
        assert frames == [(b"first", wsnb.DATA)] and taken == len(whole)


def test_no_more_frames_than_the_table_holds():
    data = frame(b"a") * 10
    frames, taken = split(data, max_frames=4)
    assert len(frames) == 4 and taken == 4 * len(frame(b"a"))
