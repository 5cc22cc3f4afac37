"""``LiveRehearsal``: a twin of the live feed, stepped with scripted frames while the market is quiet,
so the live path's code (Python and the numba kernels) and its kind of data stay in the caches.

Why (``live_poll`` has the measurements): after a quiet spell the first frame's step paid for cold
caches and branch predictors. The network thread's busy-poll selector calls ``rehearse`` every 0.5 ms
of idle; the twin then runs what a frame of the live feed runs:

    rehearse()  (network thread, between polls)
       │ depth diff k (continues the twin's sequence),
       │ a trade and a bookTicker, as one read  ──▶ twin.take_read(): what a live read of such frames
       ▼                                             runs (live_read_nb: split, scan, sync, records,
                                                     books, rings), or the queue and twin._step()
    every 16 rounds the twin's private rings are drained (poll + release): they never fill

The twin is a ``LiveFeed`` of its own (same symbol table, window, levels and batch size as the live
one, so its kernels are the same compiled specializations), with its own books, decoder, histograms
and two private rings (``Ring.private``, nothing in /dev/shm); its client is never started. It
shares nothing the live feed writes: the live books, rings, decoder and counters are never touched
(``tests/unit/test_live_rehearsal.py`` compares them byte for byte around a thousand rehearsals).

The script, for the first symbol of the live subscription (market spot, USD-M or COIN-M, frames
shaped as that market sends them): a snapshot (lastUpdateId 3, five levels a side around
``base_ticks``) and a first diff (U=3, u=4) sync the twin's book once; rehearsal k then sends diff
U=2k+1, u=2k+2 (futures: pu=2k = the previous u; spot: U = the previous u + 1), which changes the two
best levels of each side and inserts or deletes a sixth, then a trade and a bookTicker at the top of
the book. Prices and quantities are whole ticks and lots of the symbol table's sizes: nothing is
rejected. A book found invalid (it never should be) is synced again from a fresh snapshot.
"""

from __future__ import annotations

import time

from hftshm.book.book import DecimalStep
from hftshm.feed.live import LiveFeed
from hftshm.feed.live_record import wrap_snapshot
from hftshm.transport.ring import Ring

EVENT_RING_CAPACITY = 1 << 12
BOOK_RING_CAPACITY = 1 << 10
DRAIN_EVERY = 16  # rounds between drains (~10 us each): a round writes ~9 events and ~3 books
BASE_TICKS = 100_000  # the twin's mid, in ticks (BTCUSDT: 10000.0; a price of a live book's magnitude)
_SPOT_DECIMALS = 8  # spot sends every price and quantity with 8 decimals
_LEVELS = 5  # snapshot levels a side


class LiveRehearsal:
    """The twin of ``live`` (a ``LiveFeed``) and its script; ``rehearse()`` runs one round."""

    def __init__(self, live: LiveFeed, *, base_ticks: int = BASE_TICKS):
        sub, symbol = _first_known_symbol(live)
        self.market = sub.market.name
        self.symbol = symbol.name
        self.spot = self.market == "spot"  # spot diffs carry no pu; COIN-M's sequence is USD-M's
        self.twin = LiveFeed([sub], live.symbols, batch_frames=live.batch_frames, book_levels=live.book_levels,
                             window_ticks=live.books.window_ticks, network="thread", poll="block")
        self.rings = (Ring.private("market_event", EVENT_RING_CAPACITY),
                      Ring.private("book_snapshot", BOOK_RING_CAPACITY))
        for ring in self.rings:
            self.twin.add_output(ring)
        self.twin.warm_up()
        self.rehearsals = 0
        self.resyncs = 0
        self._k = 1  # the diff sequence: diff k has U=2k+1, u=2k+2
        self._stream = symbol.name.lower().encode()
        self._name = symbol.name.encode()
        self._depth_stream = sub.market.depth_stream.encode()
        px, qty = _steps(symbol.tick_size, self.spot), _steps(symbol.lot_size, self.spot)
        self._bid = [px.format(base_ticks - i).encode() for i in range(_LEVELS + 2)]  # index = ticks below
        self._ask = [px.format(base_ticks + i).encode() for i in range(_LEVELS + 2)]  # index = ticks above
        self._qty = [qty.format(n).encode() for n in range(_LEVELS + 1)]  # index = lots ("0": a deletion)
        self._sync()
        if not self.twin.books[self.symbol].valid:
            raise RuntimeError(f"live rehearsal: the twin's {self.symbol} book did not sync "
                               f"({self.twin.stats()})")

    # ------------------------------------------------------------------ the round
    def rehearse(self) -> None:
        """One round: a depth diff, a trade and a bookTicker through the twin, as one socket read."""
        twin = self.twin
        if not twin.books[self.symbol].valid:  # never expected: the script continues its own sequence
            self.resyncs += 1
            self._sync()
        self._k += 1
        k = self._k
        recv_ns = time.time_ns()
        exch_ms = recv_ns // 1_000_000
        market = self.market
        frames = (self._depth(k, exch_ms), self._trade(k, exch_ms), self._book_ticker(k, exch_ms))
        self.rehearsals += 1
        # as the connection hands a read over: its bytes to the one-call shortcut (take_read), or, if
        # that does not take them, the frames to the queue and the step
        read = bytearray(b"".join([_ws_frame(frame) for frame in frames]))
        if twin.take_read(market, read, recv_ns) is not None:
            if self.rehearsals % DRAIN_EVERY == 0:
                self._drain()
            return
        twin.queue.items.extend((recv_ns, frame, market) for frame in frames)
        self._step(drain=self.rehearsals % DRAIN_EVERY == 0)

    def _step(self, drain: bool = True) -> None:
        twin = self.twin
        twin._step()
        if drain:
            self._drain()
        while twin.pending or twin.queue.items:  # (not with these ring sizes: kept so that a change cannot wedge)
            self._drain()
            twin._step()

    def _drain(self) -> None:
        for ring in self.rings:
            while ring.has_records():
                ring.poll(ring.capacity)
                ring.release()

    def _sync(self) -> None:
        """A snapshot with lastUpdateId 2k+1 and diff k straddling it: the twin's book is valid."""
        k = self._k
        recv_ns = time.time_ns()
        exch_ms = recv_ns // 1_000_000
        bids = b",".join(b'["%b","%b"]' % (self._bid[i], self._qty[i]) for i in range(1, _LEVELS + 1))
        asks = b",".join(b'["%b","%b"]' % (self._ask[i], self._qty[i]) for i in range(1, _LEVELS + 1))
        times = b"" if self.spot else b'"E":%d,"T":%d,' % (exch_ms, exch_ms)
        body = b'{"lastUpdateId":%d,%b"bids":[%b],"asks":[%b]}' % (2 * k + 1, times, bids, asks)
        # spot's snapshot has no exchange time (it is its receive time): not after the diff's, which
        # would count as exchange time running backwards
        snapshot_ns = exch_ms * 1_000_000 if self.spot else recv_ns
        items = self.twin.queue.items
        items.append((snapshot_ns, wrap_snapshot(self.symbol, body), self.market))
        items.append((recv_ns, self._depth(k, exch_ms), self.market))
        self._step()

    # ------------------------------------------------------------------ frames, as the market sends them
    def _depth(self, k: int, exch_ms: int) -> bytes:
        q1, q2 = self._qty[1 + k % 4], self._qty[1 + (k + 2) % 4]
        far = self._qty[3] if k % 2 == 0 else self._qty[0]  # the sixth level: inserted, then deleted
        bids = b'["%b","%b"],["%b","%b"],["%b","%b"]' % (self._bid[1], q1, self._bid[2], q2, self._bid[6], far)
        asks = b'["%b","%b"],["%b","%b"],["%b","%b"]' % (self._ask[1], q2, self._ask[2], q1, self._ask[6], far)
        if self.spot:
            return (b'{"stream":"%b@%b","data":{"e":"depthUpdate","E":%d,"s":"%b","U":%d,"u":%d,"b":[%b],"a":[%b]}}'
                    % (self._stream, self._depth_stream, exch_ms, self._name, 2 * k + 1, 2 * k + 2, bids, asks))
        return (b'{"stream":"%b@%b","data":{"e":"depthUpdate","E":%d,"T":%d,"s":"%b","U":%d,"u":%d,"pu":%d,'
                b'"b":[%b],"a":[%b]}}' % (self._stream, self._depth_stream, exch_ms, exch_ms, self._name, 2 * k + 1,
                                          2 * k + 2, 2 * k, bids, asks))

    def _trade(self, k: int, exch_ms: int) -> bytes:
        buyer_is_maker = k % 2 == 0  # sides alternate: a sell at the bid, a buy at the ask
        price = self._bid[1] if buyer_is_maker else self._ask[1]
        maker = b"true" if buyer_is_maker else b"false"
        if self.spot:
            return (b'{"stream":"%b@trade","data":{"e":"trade","E":%d,"s":"%b","t":%d,"p":"%b","q":"%b","T":%d,'
                    b'"m":%b,"M":true}}' % (self._stream, exch_ms, self._name, k, price, self._qty[1], exch_ms, maker))
        return (b'{"stream":"%b@trade","data":{"e":"trade","E":%d,"T":%d,"s":"%b","t":%d,"p":"%b","q":"%b",'
                b'"X":"MARKET","m":%b}}' % (self._stream, exch_ms, exch_ms, self._name, k, price, self._qty[1], maker))

    def _book_ticker(self, k: int, exch_ms: int) -> bytes:
        bid_qty, ask_qty = self._qty[1 + k % 4], self._qty[1 + (k + 2) % 4]  # the diff's best levels
        if self.spot:  # spot's bookTicker has no event type and no times
            return (b'{"stream":"%b@bookTicker","data":{"u":%d,"s":"%b","b":"%b","B":"%b","a":"%b","A":"%b"}}'
                    % (self._stream, 2 * k + 2, self._name, self._bid[1], bid_qty, self._ask[1], ask_qty))
        return (b'{"stream":"%b@bookTicker","data":{"e":"bookTicker","u":%d,"s":"%b","b":"%b","B":"%b","a":"%b",'
                b'"A":"%b","T":%d,"E":%d}}' % (self._stream, 2 * k + 2, self._name, self._bid[1], bid_qty,
                                               self._ask[1], ask_qty, exch_ms, exch_ms))


def _ws_frame(payload: bytes) -> bytes:
    """``payload`` as a server sends it: one unmasked, final text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def _first_known_symbol(live: LiveFeed):
    """The first subscribed symbol the symbol table knows (the live feed rejects the others' rows),
    and its subscription."""
    for sub in live.subscriptions:
        for name in sub.symbols:
            if name in live.symbols:
                return sub, live.symbols.by_name(name)
    raise ValueError("live rehearsal: no subscribed symbol has a [symbols] entry (tick and lot size)")


def _steps(size: float, spot: bool) -> DecimalStep:
    """The tick or lot size as exact decimal text; spot's written with 8 decimals, as spot sends them."""
    step = DecimalStep.of(size)
    if spot and step.decimals < _SPOT_DECIMALS:
        step = DecimalStep(step.num * 10 ** (_SPOT_DECIMALS - step.decimals), _SPOT_DECIMALS)
    return step
