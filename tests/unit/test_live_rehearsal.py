"""LiveRehearsal (hftshm.feed.live_rehearsal): a twin of the live feed stepped through scripted
frames while the market is quiet. Nothing of the live feed changes, nothing the twin takes is
rejected, its book stays valid, and it runs the live feed's own compiled specialization."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from numba import typeof

from hftshm.feed.live import LiveFeed
from hftshm.feed.live_client import Subscription, market_for
from hftshm.feed.live_rehearsal import BASE_TICKS, LiveRehearsal
from hftshm.symbols import DEFAULT_SYMBOLS, Symbol, SymbolTable
from tests.live_helpers import shipped_frames

NOWHERE = ("ws://127.0.0.1:9/stream", "http://127.0.0.1:9/d")  # the feeds here are never started


def _sub(market: str, symbol: str) -> Subscription:
    return Subscription(market_for(market, *NOWHERE), (symbol,))


def _live(rings) -> tuple[LiveFeed, list]:
    """A live feed as the platform's (two rings of each kind, in shared memory), warmed up."""
    live = LiveFeed([_sub("usdm", "BTCUSDT")], DEFAULT_SYMBOLS, batch_frames=64)
    outs = [rings("market_event"), rings("market_event"), rings("book_snapshot"), rings("book_snapshot")]
    for ring in outs:
        live.add_output(ring)
    live.warm_up()
    return live, outs


def _take(live: LiveFeed, frames: list) -> None:
    live.queue.items.extend(frames)
    while live.queue.items or live.pending:
        live.step()


def _state(live: LiveFeed, outs: list) -> tuple:
    """Everything of the live feed a rehearsal could touch: books, histograms, staging, the decoder's
    arrays, counters and summaries, every ring's header and records (cursors included)."""
    decoder = live.decoder
    arrays = [*live.books.arrays, live.hist_exch_to_recv, live.hist_recv_to_publish, live._staged, live._snaps,
              decoder.out, decoder._state, decoder._issue_counts, decoder._sym_stats, decoder._last_local,
              decoder._last_exch, *(r.ctrl for r in outs), *(r.records for r in outs)]
    summaries = {m: copy.deepcopy(vars(s)) for m, s in decoder.summaries().items()}
    counters = (live.events_published, live.snapshots_published, live.blocked, len(live.queue.items),
                [(o.pos, o.written) for o in live.outputs], decoder.next_line_no)
    return [a.tobytes() for a in arrays], copy.deepcopy(vars(decoder.stats)), summaries, counters


def test_rehearsals_leave_the_live_feed_byte_for_byte_unchanged(rings):
    live, outs = _live(rings)
    _take(live, shipped_frames(1500))
    assert live.events_published > 5000 and live.book_valid("BTCUSDT")
    before = _state(live, outs)
    rehearsal = live.rehearsal = LiveRehearsal(live)
    for _ in range(1000):
        live._idle_work()  # the network loop's idle hook: a rehearsal, then the working set pulled in
    assert live.keep_warm() > 100  # cache lines of the one call's state, buffers and code
    after = _state(live, outs)
    assert after[1:] == before[1:]  # decoder stats, summaries, counters
    changed = [k for k, (a, b) in enumerate(zip(before[0], after[0])) if a != b]
    assert changed == []  # books, histograms, buffers, rings
    twin = rehearsal.twin
    assert rehearsal.rehearsals == 1000 and twin.events_published >= 9 * 1000  # the twin did the work
    assert not any(np.shares_memory(a, b) for a in live.books.arrays for b in twin.books.arrays)


def test_a_live_feed_rehearsed_between_reads_publishes_what_an_unrehearsed_one_does(rings):
    """The live feed's synchronisation, books and rings carry on after rehearsals exactly as without."""
    frames = shipped_frames(2500)
    rehearsed, rehearsed_outs = _live(rings)
    plain, plain_outs = _live(rings)
    rehearsal = LiveRehearsal(rehearsed)
    for k in range(0, len(frames), 250):
        _take(rehearsed, frames[k:k + 250])
        _take(plain, frames[k:k + 250])
        for _ in range(50):
            rehearsal.rehearse()
    assert rehearsal.rehearsals == 500
    assert rehearsed.decoder.stats == plain.decoder.stats and rehearsed.events_published > 10_000
    for a, b in zip(rehearsed.books.arrays, plain.books.arrays):
        assert np.array_equal(a, b)
    for a, b in zip(rehearsed_outs, plain_outs):
        got, want = a.poll(1 << 20), b.poll(1 << 20)
        assert len(got) == len(want) > 0
        for field in got.dtype.names:
            if field != "publish_ts_ns":  # the publish clock is the only difference
                assert np.array_equal(got[field], want[field]), (a.layout.name, field)


def test_the_twin_runs_the_live_feeds_compiled_specialization(rings):
    """The twin's one-call bundle has the live feed's numba type (shared-memory rings against private
    ones, two rings of a kind against one): its rehearsals run the very machine code the live step runs."""
    live, _ = _live(rings)
    _take(live, shipped_frames(300))
    rehearsal = LiveRehearsal(live)
    rehearsal.rehearse()
    assert live._call_state is not None and rehearsal.twin._call_state is not None
    assert typeof(rehearsal.twin._call_state) == typeof(live._call_state)


SPOT = SymbolTable([Symbol("ETHUSDT", 2, 0.01, 0.0001, "spot")])
COINM = SymbolTable([Symbol("ETHUSD_PERP", 3, 0.01, 1.0, "inverse", 10.0)])
ODD_GRID = SymbolTable([Symbol("XYZUSDT", 4, 0.5, 0.01)])  # tick 0.5: 5 only in the last digit


@pytest.mark.parametrize("market, symbol, symbols", [
    ("usdm", "BTCUSDT", DEFAULT_SYMBOLS), ("spot", "ETHUSDT", SPOT), ("coinm", "ETHUSD_PERP", COINM),
    ("usdm", "XYZUSDT", ODD_GRID),
])
def test_a_thousand_rehearsals_are_never_rejected_and_keep_the_twins_book_valid(market, symbol, symbols):
    live = LiveFeed([_sub(market, symbol)], symbols)
    rehearsal = LiveRehearsal(live)
    twin = rehearsal.twin
    for _ in range(1000):
        rehearsal.rehearse()
    stats = twin.stats()
    assert stats["frames"] == 2 + 3 * 1000  # the sync's snapshot and diff, then three frames a round
    assert stats["rejects"] == {} and stats["row_rejects"] == 0 and twin.decoder.row_issues() == {}
    assert stats["dropped"] == {} and stats["gaps"] == 0 and rehearsal.resyncs == 0
    assert twin.books.rejected() == 0 and twin.books.issues()[symbol] == {}  # not crossed, on the grid
    book = twin.books[symbol]
    bids, asks = book.levels(10)
    assert book.valid and bids[0][0] == BASE_TICKS - 1 and asks[0][0] == BASE_TICKS + 1
    assert len(bids) == len(asks) == 5  # round 1000 deleted the sixth level round 999 inserted
    assert twin.blocked == 0 and not twin.pending  # the private rings never filled
    assert twin.events_published >= 9 * 1000


def test_the_rehearsal_needs_a_subscribed_symbol_in_the_table():
    live = LiveFeed([_sub("usdm", "DOGEUSDT")], DEFAULT_SYMBOLS)
    with pytest.raises(ValueError, match="no subscribed symbol"):
        LiveRehearsal(live)
