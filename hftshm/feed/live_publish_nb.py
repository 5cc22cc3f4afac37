"""numba kernel: a live batch's canonical rows -> records -> books -> rings, in one call.

The live feed's step used to make five kernel calls a batch after the import's synchronisation had
written the canonical rows: the tick parser (``csv_nb.parse_block``), the books
(``replay_nb.stage``), one ``replay_nb.publish`` per ring and the latency kernel. At the recorded
pace a batch is one frame, and each call's fixed cost is what a frame pays: numba types and
unboxes every argument on each call (~0.05 us an array warm, ~1 us from cold caches). This kernel
runs the same kernels, in the same order, from one call.

Its state (the parser's, the books', the feed's buffers and the rings) is one named bundle,
``LiveCallState`` (a numba StructRef built once by ``new_call_state``), so a call unboxes four
arguments instead of ~40 (31 arrays, the books' tuple of ten, the rings' flags): a call with the
bundle costs what a call with one array does (measured: 0.8 against 1.9 us warm, 7.4 against 10.4
us from cold caches for 31 arrays). A NamedTuple would not do: numba types every member of a
tuple on each call, and a NamedTuple's class on top (3.6 us warm, 17-18 us cold, for the same 31).
The bundle holds references: it is rebuilt when the feed replaces one of its arrays (a bigger
buffer, the books' far levels grown).

Rings: up to two of each kind (the platform's feed writes events for the strategies and the
exchange, books for the strategies and risk), each as (ctrl, records, drop, present); a ring not
there is a private stand-in whose flag is off. ``counts`` (int64, ``N_COUNTS``) returns what
happened: records parsed, events and book records staged, and how many went into each ring (a
``block`` ring may take fewer: the caller publishes the rest later, as before).
"""

from __future__ import annotations

from numba import njit, types
from numba.experimental import structref
from numba.extending import overload

from hftshm.feed import binance_nb as scan_nb
from hftshm.feed import binance_records_nb as records_nb
from hftshm.feed import binance_sync_nb as sync_nb
from hftshm.feed import csv_nb, replay_nb
from hftshm.feed.live_latency_nb import receive_to_publish
from hftshm.transport.clock_nb import _clock_gettime_ns, monotonic_ns

C_RECORDS, C_STAGED, C_SNAPS = 0, 1, 2
C_WRITTEN = 3  # then one per ring: events ring 1, events ring 2, books ring 1, books ring 2
N_COUNTS = 7
# ``step_lines`` only, after those: the canonical rows it formatted (-1: the batch holds a line it
# does not take, nothing was done), the bbo, trade and depth lines, the bbos without an exchange time,
# the depth rows and the diffs without levels; C_ROOM (in): how many rows the books have far-level
# room for; C_NEED (out): the rows a batch needs when there was not room for them (nothing done)
C_ROWS, C_BBOS, C_TRADES, C_BBOS_WITHOUT_EXCH, C_DEPTHS, C_DEPTH_ROWS, C_DEPTHS_WITHOUT_LEVELS, C_ROOM, \
    C_NEED, C_NEW_SYMBOLS = range(7, 17)
N_LINE_COUNTS = 17  # (C_NEW_SYMBOLS: lines whose symbol has no synchronisation row, so may be new to the
# import's summary; 0 spares the caller looking at each line's symbol)
FAST_LINES = 512  # a batch of up to this many lines can take step_lines
MAX_RINGS_OF_A_KIND = 2
_CLOCK_REALTIME = 0  # time.time_ns()'s clock: the one frames are stamped with on receipt
_LAST = int(replay_nb._LAST)


@structref.register
class LiveCallStateType(types.StructRef):
    """The one call's state: ``parser`` (symbol table, records buffer, parser state and counters:
    ``csv_nb.parse_block``'s arguments after the first line number), ``books`` (the book set's
    arrays, the levels published, the staging buffers, the scratch, the exchange -> receive
    histogram), ``rings`` (two event rings then two book rings, each ctrl, records, drop, present)
    and ``tail`` (the receive -> publish histogram, the counts, ``step_lines``' line table, the
    decoder's synchronisation tables - words, names, name lengths, one per market - a scratch of
    (row, u) pairs and the scanner's working arrays)."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


class LiveCallState(structref.StructRefProxy):
    """What ``new_call_state`` returns; handed back to ``step_call`` as is."""


structref.define_boxing(LiveCallStateType, LiveCallState)


def _make_state(parser, books, rings, tail):  # typed by the overload below
    raise NotImplementedError


@overload(_make_state)
def _make_state_typed(parser, books, rings, tail):
    state_type = LiveCallStateType([("parser", parser), ("books", books), ("rings", rings), ("tail", tail)])

    def make(parser, books, rings, tail):
        state = structref.new(state_type)
        state.parser = parser
        state.books = books
        state.rings = rings
        state.tail = tail
        return state
    return make


@njit(cache=True)
def new_call_state(parser, books, rings, tail):
    """The bundle (see ``LiveCallStateType`` for what each tuple holds)."""
    return _make_state(parser, books, rings, tail)


@njit(cache=True)
def step_call(rows, first_line_no, seq0, state):
    """``rows``: the batch's canonical CSV rows (uint8, whole lines), parsed by the tick parser
    (``csv_nb.parse_block``), then ``stage_publish``."""
    sym_names, sym_lens, sym_ids, out, pstate, issue_counts, issue_lines, issue_codes, last_local, last_exch, \
        sym_stats = state.parser
    pstate[csv_nb.ST_CARRY] = 0
    n = csv_nb.parse_block(rows, first_line_no, False, sym_names, sym_lens, sym_ids, out, pstate, issue_counts,
                           issue_lines, issue_codes, last_local, last_exch, sym_stats)
    stage_publish(n, seq0, state)


@njit(cache=True)
def stage_publish(n, seq0, state):
    """The batch's ``n`` records (in the parser's ``out``) through the books and into the rings.
    Books are published before events (as the replay commits them); the events' receive -> publish
    latency is taken against the wall clock read just before the first events ring's commit (as the
    ring-by-ring path does)."""
    out, pstate = state.parser[3], state.parser[4]
    books, levels, staged, snaps, scratch_px, scratch_qty, hist_exch_to_recv = state.books
    md_ctrl, md_records, md_drop, has_md, md2_ctrl, md2_records, md2_drop, has_md2, \
        bk_ctrl, bk_records, bk_drop, has_bk, bk2_ctrl, bk2_records, bk2_drop, has_bk2 = state.rings
    hist_recv_to_publish, counts = state.tail[0], state.tail[1]
    for k in range(N_COUNTS):
        counts[k] = 0
    counts[C_RECORDS] = n
    if n == 0:
        return
    out[n - 1].flags |= _LAST  # a batch ends at a frame's end: its last message is whole
    offset_ns = pstate[csv_nb.ST_MIN_LOCAL_MINUS_EXCH] if pstate[csv_nb.ST_HAS_MIN] else 0
    # what replay_nb.stage does with one source whose records all go, whole messages (the last one
    # ends the batch): one run through the books (a typed list of sources, the merge's argument,
    # cost ~14 us of the call's unboxing from cold caches, more than the rest of the call's arrays)
    book_state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of = books
    n_staged, n_snaps = replay_nb.stage_run(out, 0, n, staged, 0, seq0, 0, hist_exch_to_recv, offset_ns, book_state,
                                            params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, levels,
                                            snaps, 0, scratch_px, scratch_qty)
    counts[C_STAGED] = n_staged
    counts[C_SNAPS] = n_snaps
    if has_bk:
        counts[C_WRITTEN + 2] = replay_nb.publish(bk_ctrl, bk_records, snaps, 0, n_snaps, monotonic_ns(), bk_drop)
    if has_bk2:
        counts[C_WRITTEN + 3] = replay_nb.publish(bk2_ctrl, bk2_records, snaps, 0, n_snaps, monotonic_ns(), bk2_drop)
    if has_md:
        wall = _clock_gettime_ns(_CLOCK_REALTIME)
        written = replay_nb.publish(md_ctrl, md_records, staged, 0, n_staged, monotonic_ns(), md_drop)
        receive_to_publish(hist_recv_to_publish, staged, 0, written, wall)
        counts[C_WRITTEN] = written
    if has_md2:
        counts[C_WRITTEN + 1] = replay_nb.publish(md2_ctrl, md2_records, staged, 0, n_staged, monotonic_ns(),
                                                  md2_drop)


@njit(cache=True)
def step_lines(lines, n_lines, market, first_line_no, seq0, state):
    """A batch of recording lines (``<receive ns> <frame>``) of market ``market`` that are all trades,
    best bid/asks and depth diffs continuing a live book: the import's byte scanner
    (``binance_nb``), its synchronisation rule (``binance_sync_nb.continues``, on the same state
    words the importer keeps), the records of the rows its block path writes for them
    (``binance_records_nb``: the tick parser's own row handling, without the text), then
    ``stage_publish``, in one call: no Python between the frame's bytes and the rings. Anything else
    (a snapshot, a diff of a symbol not live or not continuing its book - a gap, a duplicate, the
    first diff after a snapshot - or a line the scanner leaves to the JSON path): nothing is done,
    ``counts[C_ROWS]`` is -1 and the caller takes the import's line path, which decides and reports
    as it always has. Not enough room for the batch's records: ``counts[C_NEED]`` says how many
    rows, nothing is done."""
    hist_recv_to_publish, counts, table, sync_words, sync_names, sync_lens, sync_rows, scratch = state.tail
    counts[C_ROWS] = -1
    counts[C_NEED] = 0
    if n_lines > len(table):
        return
    scan_nb.scan_lines_into(lines, n_lines, table, scratch)  # (nothing allocated per read)
    words = sync_words[market]
    names = sync_names[market]
    lens = sync_lens[market]
    n_bbo = 0
    n_trade = 0
    without = 0
    n_depth = 0
    depth_rows = 0
    depth_empty = 0
    new_symbols = 0
    for k in range(n_lines):
        scanned = table[k]
        kind = scanned[scan_nb.C_KIND]
        if kind == scan_nb.BBO or kind == scan_nb.TRADE:
            if kind == scan_nb.BBO:
                n_bbo += 1
                if scanned[scan_nb.C_HAS_EXCH_KEY] == 0:
                    without += 1
            else:
                n_trade += 1
            if sync_nb.find_row(names, lens, lines, scanned[scan_nb.C_SYM_S], scanned[scan_nb.C_SYM_E]) < 0:
                new_symbols += 1
        elif kind == scan_nb.DEPTH:
            row = sync_nb.find_row(names, lens, lines, scanned[scan_nb.C_SYM_S], scanned[scan_nb.C_SYM_E])
            if row < 0 or words[row, sync_nb.W_STATE] != sync_nb.LIVE:
                return
            prev_id = scanned[scan_nb.C_PREV]
            spot = prev_id < 0
            if words[row, sync_nb.W_SPOT] != (1 if spot else 0):
                return
            # the u this batch has taken the book to so far (rows touched earlier in the batch)
            prev_u = words[row, sync_nb.W_PREV_U]
            for j in range(n_depth - 1, -1, -1):
                if sync_rows[j, 0] == row:
                    prev_u = sync_rows[j, 1]
                    break
            last_id = scanned[scan_nb.C_UID]
            if sync_nb.continues(spot, prev_u, scanned[scan_nb.C_FIRST], last_id, prev_id) != sync_nb.EMIT:
                return
            sync_rows[n_depth, 0] = row
            sync_rows[n_depth, 1] = last_id
            n_depth += 1
            levels = scanned[scan_nb.C_NBIDS] + scanned[scan_nb.C_NASKS]
            depth_rows += levels
            if levels == 0:
                depth_empty += 1
        else:
            return
    n_rows = 2 * n_bbo + n_trade + depth_rows
    sym_names, sym_lens, sym_ids, out, pstate, issue_counts, issue_lines, issue_codes, last_local, last_exch, \
        sym_stats = state.parser
    staged = state.books[2]
    snaps = state.books[3]
    if 2 * n_rows + 2 > len(out) or n_rows > len(staged) or n_rows > len(snaps) \
            or 2 * n_rows + 2 > counts[C_ROOM]:
        counts[C_NEED] = n_rows
        return
    for j in range(n_depth):  # the import's _emit_depth: the book is live at this diff's u
        words[sync_rows[j, 0], sync_nb.W_PREV_U] = sync_rows[j, 1]
    n = records_nb.records_of_lines(lines, table, n_lines, first_line_no, sym_names, sym_lens, sym_ids, out, pstate,
                                    issue_counts, issue_lines, issue_codes, last_local, last_exch, sym_stats)
    stage_publish(n, seq0, state)
    counts[C_ROWS] = n_rows
    counts[C_BBOS] = n_bbo
    counts[C_TRADES] = n_trade
    counts[C_BBOS_WITHOUT_EXCH] = without
    counts[C_DEPTHS] = n_depth
    counts[C_DEPTH_ROWS] = depth_rows
    counts[C_DEPTHS_WITHOUT_LEVELS] = depth_empty
    counts[C_NEW_SYMBOLS] = new_symbols
