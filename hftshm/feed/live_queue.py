"""``FrameQueue``: the websocket client's sink in the live feed's process (network thread).

Every frame, snapshot and disconnect, with its receive time, in arrival order, for ``LiveFeed.step``;
a socket read is first offered to the feed's one-call shortcut (``on_read``: ``LiveFeed.take_read``),
and after each read, snapshot or disconnect ``on_ready`` steps the feed on the network thread.
"""

from __future__ import annotations

from collections import deque

from hftshm.feed.live_record import Recorder, wrap_snapshot


class FrameQueue:
    """The client's sink for the live feed: every frame, snapshot and disconnect, in arrival order.

    Bounded: past ``max_frames`` waiting (the feed thread cannot keep up) a frame is dropped and
    counted; the synchronisation then sees the gap in the depth sequence and resyncs the book."""

    def __init__(self, recorder: Recorder | None = None, max_frames: int = 1 << 20):
        self.items: deque = deque()
        self.recorder = recorder  # --record: the raw stream is written alongside (dropped frames too)
        self.max_frames = max_frames
        self.dropped = 0
        self.connects = 0
        self.on_ready = None  # the live feed's: steps it on the network thread once items are queued
        self.on_read = None  # the live feed's take_read: a socket read's frames to the rings in one call

    def on_frame(self, market: str, recv_ns: int, frame: bytes) -> None:
        if len(self.items) < self.max_frames:
            self.items.append((recv_ns, frame, market))
        else:
            self.dropped += 1
        if self.recorder is not None:
            self.recorder.on_frame(market, recv_ns, frame)

    def on_frames(self, market: str, recv_ns: int, frames: list) -> None:
        """One socket read's frames (all stamped with that read's time)."""
        items = self.items
        room = self.max_frames - len(items)
        if room >= len(frames):
            items.extend([(recv_ns, frame, market) for frame in frames])
        else:
            items.extend([(recv_ns, frame, market) for frame in frames[:max(room, 0)]])
            self.dropped += len(frames) - max(room, 0)
        if self.recorder is not None:
            for frame in frames:
                self.recorder.on_frame(market, recv_ns, frame)

    def on_read_end(self, market: str) -> None:
        if self.on_ready is not None:
            self.on_ready()

    def on_snapshot(self, market: str, symbol: str, recv_ns: int, body: bytes) -> None:
        self.items.append((recv_ns, wrap_snapshot(symbol, body), market))
        if self.recorder is not None:
            self.recorder.on_snapshot(market, symbol, recv_ns, body)
        if self.on_ready is not None:
            self.on_ready()

    def on_connect(self, market: str, attempt: int) -> None:
        self.connects += 1

    def on_disconnect(self, market: str, recv_ns: int, reason: str) -> None:
        self.items.append((recv_ns, None, market))
        if self.recorder is not None:
            self.recorder.on_disconnect(market, recv_ns, reason)
        if self.on_ready is not None:
            self.on_ready()
