"""Live feed: Binance frames -> L2 books -> rings, as the replay publishes a file.

    feed = LiveFeed(subscriptions, symbols)
    feed.add_output(ring)              # market_event rings get events, book_snapshot rings get books
    feed.start()                       # the websocket client's own process (or thread) and loop
    while running: feed.step()         # one bounded batch; 0 when nothing has arrived

Network: by default (``network="thread"``) the client (``live_client``) runs on a thread of this
process and appends every frame, with its receive time, to a deque (``collections.deque.append`` is
atomic: no lock), sharing this process's GIL; after each socket read (and each snapshot or
disconnect) the network thread runs ``step`` itself, at once, so a frame is published by the thread
the kernel woke for it, with no hand-off to the feed's thread (which waited for the GIL and for a
CPU: 55-80 us p50 at the recorded pace on a loaded 2-CPU machine). ``step`` is taken by one thread
at a time (a try-lock: the other finds 0 and carries on), so the rings keep a single producer;
the feed's thread still steps (a full ring's held-back batch, frames the network thread left).
With ``network="process"`` the client runs in a child process (``live_net``) that writes the frames
into a ``live_frame`` shared-memory ring, and only the feed's thread steps. ``step`` takes up to
``batch_frames`` frames at once and decodes the whole batch with the import's
code (``live_decode``); the records then go through the replay's kernels: ``replay_nb.stage`` (books,
``book_snapshot`` records, exchange->receive latency) and ``replay_nb.publish`` (one copy per ring),
so Python touches a batch, never an event. A full ``block`` ring holds the batch back (counted as
a blocked cycle); a full ``drop`` ring loses it (counted in the ring's drops).

Poll (``poll="spin"``, the default, with the thread): the network loop busy-polls instead of sleeping
in epoll (``live_poll``) and rehearses a twin feed every 0.5 ms of idle (``live_rehearsal``): code and
caches stay warm; the feed's thread waits in ``idle_wait`` for work the network thread leaves it.
``poll="block"``: the loop sleeps in epoll. No effect with ``network="process"`` (the child blocks).

Latency: ``exch_to_recv`` = receive - exchange - clock offset, the offset being the smallest
receive - exchange seen so far (the local clock is not the exchange's; the shipped day's ran
1.27 s behind), so never negative; ``recv_to_publish`` = wall clock at the ring commit - receive.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
from numba import typed

from hftshm.book.book import DEFAULT_WINDOW_TICKS, BookSet
from hftshm.feed import binance_nb as scan_nb
from hftshm.feed import live_keep_warm, live_latency_nb, live_publish_nb, live_read_nb, live_ws_nb, replay_nb
from hftshm.feed.live_client import BinanceStreamClient, Subscription
from hftshm.feed.live_decode import LINE_PATH_FRAMES, LiveDecoder
from hftshm.feed.live_net import NetworkProcess, warm_up_kernels
from hftshm.feed.live_poll import BusyPollSelector
from hftshm.feed.live_queue import FrameQueue
from hftshm.feed.live_record import Recorder
from hftshm.metrics.histogram import new_histogram
from hftshm.runtime import keep_warm_nb
from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load as load_layout

_NO_LIMIT = np.iinfo(np.int64).max
_RESERVE_EVENTS = 1 << 16
_READ_ROWS = 64  # take_read's room for a read's canonical rows (a read needing more takes the queue's path)
_READ_RECORDS = 2 * _READ_ROWS + 2  # (the parser's bound on records per row)
_CHECK_EVERY_IDLE_STEPS = 1023  # mask: the network process's liveness is looked at every 1024 idle steps
NETWORK_MODES = ("process", "thread")
POLL_MODES = ("block", "spin")  # the network thread's loop: sleeps in epoll, or busy-polls (live_poll)

log = logging.getLogger("hftshm.feed.live")


@dataclass
class _Output:
    ring: object
    is_snapshot: bool
    drop: bool
    pos: int = 0
    written: int = 0


class LiveFeed:
    def __init__(self, subscriptions: list[Subscription], symbols: SymbolTable, *, batch_frames: int = 2048,
                 book_levels: int = 10, window_ticks: int = DEFAULT_WINDOW_TICKS, heartbeat_timeout_s: float = 10.0,
                 backoff_initial_s: float = 0.2, record_dir: str | None = None,
                 hist_exch_to_recv: np.ndarray | None = None, hist_recv_to_publish: np.ndarray | None = None,
                 network: str = "thread", poll: str = "spin"):
        if batch_frames < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        if network not in NETWORK_MODES:
            raise ValueError(f"network must be one of {', '.join(NETWORK_MODES)}, got {network!r}")
        if poll not in POLL_MODES:
            raise ValueError(f"poll must be one of {', '.join(POLL_MODES)}, got {poll!r}")
        self.symbols = symbols
        self.batch_frames = int(batch_frames)
        self.books = BookSet(symbols, window_ticks=window_ticks)
        width = load_layout("book_snapshot").dtype["bid_px"].shape[0]
        if not 1 <= book_levels <= width:
            raise ValueError(f"book_levels must be 1..{width}, got {book_levels}")
        self.book_levels = int(book_levels)
        self.network = network
        self.poll = poll  # (no effect with network "process")
        self.subscriptions = list(subscriptions)
        self.rehearsal = None  # live_rehearsal.LiveRehearsal, built by start() (thread + spin)
        # thread + spin: the feed's thread waits on this in idle_wait; the network thread sets it when it
        # leaves work for that thread
        self._work_left = threading.Event() if network == "thread" and poll == "spin" else None
        self.recorder = None
        self.queue: FrameQueue | None = None
        self.net: NetworkProcess | None = None
        if network == "process":  # the client (and --record's writing) in a child process, frames over a ring
            self.net = NetworkProcess(subscriptions, heartbeat_timeout_s=heartbeat_timeout_s,
                                      backoff_initial_s=backoff_initial_s, record_dir=record_dir)
            self.client = self.net
        else:
            if record_dir is not None:
                # level 1: the compression runs on the network thread, between receiving frames
                self.recorder = Recorder(record_dir, subscriptions, watch_sequence=False, compresslevel=1)
            self.queue = FrameQueue(self.recorder)
            self.client = BinanceStreamClient(subscriptions, self.queue, heartbeat_timeout_s=heartbeat_timeout_s,
                                              backoff_initial_s=backoff_initial_s)
        self._idle_steps = 0
        self.decoder = LiveDecoder(symbols, [s.market.name for s in subscriptions])
        self.hist_exch_to_recv = new_histogram() if hist_exch_to_recv is None else hist_exch_to_recv
        self.hist_recv_to_publish = new_histogram() if hist_recv_to_publish is None else hist_recv_to_publish
        self._sources = typed.List()
        self._sources.append(load_layout("market_event").zeros(1))
        self._cursors = np.zeros(1, np.int64)
        self._offsets = np.zeros(1, np.int64)
        self._rstate = np.zeros(replay_nb.N_REPLAY_STATE, np.int64)
        self._rstate[replay_nb.RS_OPEN_SOURCE] = -1
        self._staged = load_layout("market_event").zeros(1 << 14)
        self._snaps = load_layout("book_snapshot").zeros(1 << 14)
        self._scratch_px = np.zeros((1, 2, width), np.int64)
        self._scratch_qty = np.zeros((1, 2, width), np.int64)
        self.outputs: list[_Output] = []
        self._n_staged = 0
        self._n_snaps = 0
        self._unpublished = False  # pending's shortcut: True from a staged batch until every ring took it
        self._latency_recorded = True
        self.events_published = 0
        self.snapshots_published = 0
        self.blocked = 0
        self._reserve_budget = 0
        self._source_buffer = None
        self._step_lock = threading.Lock()
        self._network_error: BaseException | None = None
        self._counts = np.zeros(live_read_nb.N_READ_COUNTS, np.int64)
        self._fast_table = np.zeros((live_publish_nb.FAST_LINES, scan_nb.N_COLS), np.int64)  # step_lines' scan
        self._sync_rows = np.zeros((live_publish_nb.FAST_LINES, 2), np.int64)  # and the (row, u) of its diffs
        self._scan_scratch = scan_nb.new_scratch()  # and the scanner's working arrays
        self._read_frames = np.zeros((live_publish_nb.FAST_LINES, live_ws_nb.N_FCOLS), np.int64)  # take_read's
        self._read_lines = np.zeros(live_read_nb.READ_LINE_BYTES, np.uint8)  # split, and its lines
        self._one_call = self._one_call_rings()
        self._call_state = None  # live_publish_nb.LiveCallState, built on the first batch
        self._reads_direct = False  # take_read may take socket reads (thread, no --record, the one call)
        self._warm_key = None  # the bundle keep_warm's table was built for
        self._warm_set: tuple = ()
        self._call_key: tuple = ()

    # ------------------------------------------------------------------ set-up
    def add_output(self, ring) -> None:
        name = ring.layout.name
        if name not in ("market_event", "book_snapshot"):
            raise ValueError(f"ring {ring.name!r} holds {name} records; the feed publishes market_event and "
                             f"book_snapshot")
        output = _Output(ring, name == "book_snapshot", ring.backpressure == "drop")
        if output.is_snapshot:  # books before events, as the replay commits them
            first_event = next((k for k, o in enumerate(self.outputs) if not o.is_snapshot), len(self.outputs))
            self.outputs.insert(first_event, output)
        else:
            self.outputs.append(output)
        self._one_call = self._one_call_rings()
        self._call_state = None  # the rings changed
        self._reads_direct = self._one_call is not None and self.queue is not None and self.recorder is None

    def _one_call_rings(self) -> tuple | None:
        """The rings' arguments of ``live_publish_nb.parse_stage_publish`` (the events' rings, then
        the books'; a ring not there is a private stand-in with its flag off) and the outputs in the
        order of its counts, or None if the outputs hold more rings of a kind than it takes (then the
        step publishes ring by ring)."""
        events = [o for o in self.outputs if not o.is_snapshot]
        books = [o for o in self.outputs if o.is_snapshot]
        most = live_publish_nb.MAX_RINGS_OF_A_KIND
        if len(events) > most or len(books) > most:
            return None
        args, outs = [], []
        for found, layout in ((events, "market_event"), (books, "book_snapshot")):
            for k in range(most):
                out = found[k] if k < len(found) else None
                ring = out.ring if out is not None else _stand_in_ring(layout)
                args += [ring.ctrl, ring.records, bool(out is not None and out.drop), out is not None]
                outs.append(out)
        return tuple(args), outs

    def start(self) -> None:
        """Start the client. Thread + spin: the rehearsal's twin is built first (after the caller's
        ``warm_up``) and the client's loop runs on the busy-poll selector, rehearsing when idle."""
        if self.queue is not None:
            self.queue.on_ready = self._step_on_network_thread
            self.queue.on_read = self.take_read
            if self.poll == "spin":
                from hftshm.feed.live_rehearsal import LiveRehearsal  # (it builds a LiveFeed)

                if self.rehearsal is None:
                    try:
                        self.rehearsal = LiveRehearsal(self)
                    except ValueError as exc:  # no subscribed symbol in the table: spin, do not rehearse
                        log.warning("%s; the network thread spins without rehearsals", exc)
                self.client.selector_factory = self._busy_poll_selector
        self.client.start()

    def _busy_poll_selector(self) -> BusyPollSelector:
        """The network loop's selector (built on the network thread): it spins instead of sleeping in
        epoll, and after each 0.5 ms of idle rehearses and pulls the feed's working set back in."""
        return BusyPollSelector(idle=self._idle_work)

    def _idle_work(self) -> None:
        """The network loop's idle hook: the live path's code on the twin (the rehearsal), the live
        connections' read path with no bytes (the Python a read runs, on the live objects), and the
        one call's arrays and machine code pulled into the caches. Nothing of the feed changes."""
        if self.rehearsal is not None:
            self.rehearsal.rehearse()
        self.client.touch_connections()
        self.keep_warm()

    def keep_warm(self) -> int:
        """Pull the one call's working set (``live_keep_warm``) into the caches; nothing is written.
        Returns the cache lines asked for (0 before the first batch built the bundle)."""
        state = self._call_state
        if state is None:
            return 0
        if self._warm_key is not state:
            self._warm_set = live_keep_warm.working_set_of(self)
            self._warm_key = state
        regions, rings = self._warm_set
        lines = keep_warm_nb.prefetch_working_set(regions, rings)
        arrays = self.books.arrays
        live_keep_warm.pull_books(arrays[0], arrays[2], arrays[3], live_keep_warm.BOOK_SPAN_TICKS)
        return int(lines)

    def idle_wait(self, timeout_s: float) -> bool:
        """After an idle step, thread + spin: wait up to ``timeout_s`` for work the network thread left
        (a held-back batch, frames it found the step taken for, an error) instead of spinning against
        it for the GIL. True if there is work; False on time-out, or at once unless thread + spin."""
        work_left = self._work_left
        if work_left is None:
            return False
        work_left.clear()  # before looking: a set() from here on is not lost
        if self._network_error is not None or self.queue.items or self.pending:
            return True
        return work_left.wait(timeout_s)

    @property
    def rehearsals(self) -> int:
        return self.rehearsal.rehearsals if self.rehearsal is not None else 0

    def close(self) -> None:
        self.client.stop()
        if self.recorder is not None:
            self.recorder.close()

    @property
    def frames_waiting(self) -> int:
        """Frames received and not yet taken by ``step``."""
        return self.net.waiting() if self.net is not None else len(self.queue.items)

    @property
    def frames_dropped(self) -> int:
        """Frames lost because the feed fell behind (the ring or queue was full)."""
        return self.net.dropped if self.net is not None else self.queue.dropped

    @property
    def wake_rings(self) -> list:
        """Rings whose commits mean work for ``step`` (the frame ring): an idle caller parks on them
        (``transport.doorbell.Parker``) instead of sleeping blind; none when the network is a thread."""
        return [self.net.ring] if self.net is not None else []

    @property
    def net_restarts(self) -> int:
        return self.net.restarts if self.net is not None else 0

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) every kernel ``step`` calls, before the first frame:
        a throwaway decoder takes one frame of each kind (the books and rings are not touched)."""
        warm = LiveDecoder(self.symbols, ["warm-up"])
        symbol = next(iter(self.symbols)).name
        frames = [(1, line.encode(), "warm-up") for line in _warm_up_frames(symbol)]
        warm.decode(frames)  # a few frames: the import's line path
        warm.decode(frames * (LINE_PATH_FRAMES // len(frames) + 1))  # a burst: its block path
        self._stage(load_layout("market_event").zeros(0))
        for out in self.outputs:
            staged = self._snaps if out.is_snapshot else self._staged
            replay_nb.publish(out.ring.ctrl, out.ring.records, staged, 0, 0, 0, out.drop)
        live_latency_nb.receive_to_publish(self.hist_recv_to_publish, self._staged, 0, 0, 0)
        if self._one_call is not None:  # no rows: compiles (or loads) it, touches nothing of the feed's
            warm_state = self._call_state_for(warm.parse_args()[1:], warm.out)
            no_bytes = np.frombuffer(b"", np.uint8)  # read-only, as the rows' and frames' bytes are: their type
            live_publish_nb.step_call(no_bytes, 1, self.events_published, warm_state)
            live_publish_nb.step_lines(no_bytes, 0, 0, 1, self.events_published, warm_state)
            no_read = np.frombuffer(bytearray(2), np.uint8)  # a socket read's buffer: writable, its type
            live_read_nb.step_read(no_read, 0, 1, 0, 1, self.events_published, warm_state, self._read_frames,
                                   self._read_lines)
            # the idle hook's kernels too: compiled on the network thread, they held the first reads off
            # the one call for seconds (the queue's path took them meanwhile)
            keep_warm_nb.prefetch_working_set(np.zeros((0, 3), np.int64), np.zeros((0, 4), np.int64))
            arrays = self.books.arrays
            live_keep_warm.pull_books(arrays[0], arrays[2], arrays[3], live_keep_warm.BOOK_SPAN_TICKS)
            self._call_state = None  # (that one held the throwaway decoder's buffers)
        if self.net is not None:
            warm_up_kernels()
        else:
            live_ws_nb.warm_up()  # the client's frame splitter, on its thread

    # ------------------------------------------------------------------ work
    @property
    def pending(self) -> bool:
        """Staged records a ring has not taken yet (a full ``block`` ring held them back). Asked before
        every read: the outputs are only looked at after a batch was staged, until all went."""
        if not self._unpublished:
            return False
        still = any(o.pos < (self._n_snaps if o.is_snapshot else self._n_staged) for o in self.outputs)
        self._unpublished = still
        return still

    @property
    def clock_offset_ns(self) -> int | None:
        return self.decoder.clock_offset_ns

    def step(self) -> int:
        """Publish what a full ring held back, or take the frames that have arrived, decode, stage and
        publish them. Returns the records written (or staged, without rings); 0 = idle, or the
        network thread is stepping right now."""
        if self._network_error is not None:  # raised on the network thread: the feed's thread reports it
            error, self._network_error = self._network_error, None
            raise error
        if not self._step_lock.acquire(blocking=False):
            return 0
        try:
            return self._step()
        finally:
            self._step_lock.release()

    def _step_on_network_thread(self) -> None:
        """The network thread, after queueing a read's frames: publish them now (no hand-off). Work
        left for the feed's thread wakes it from ``idle_wait``."""
        try:
            while self.queue.items and self.step():
                pass
        except BaseException as exc:  # not the connection's fault: the feed's thread raises it
            self._network_error = exc
        work_left = self._work_left
        if work_left is not None and (self._network_error is not None or self.queue.items or self.pending):
            work_left.set()

    def _step(self) -> int:
        if self.pending:
            return self._publish()
        if self.net is not None:
            frames = self.net.take(self.batch_frames)
            if not frames:
                self._idle_steps += 1
                if self._idle_steps & _CHECK_EVERY_IDLE_STEPS == 0:  # waitpid: not on every idle spin
                    self.net.check()
                return 0
        else:
            items = self.queue.items
            if not items:
                return 0
            take = min(len(items), self.batch_frames)
            popleft = items.popleft
            frames = [popleft() for _ in range(take)]
        decoder = self.decoder
        if self._one_call is not None:
            lines = decoder.fast_lines(frames, live_publish_nb.FAST_LINES)
            if lines is not None:
                taken = self._step_lines(frames, lines)
                if taken is not None:
                    return taken
        rows, n_lines = decoder.rows(frames)
        if decoder.snapshot_requests:
            for market, symbol in decoder.snapshot_requests:
                self.client.request_snapshot(market, symbol)
            decoder.snapshot_requests.clear()
        if self._one_call is not None:
            return self._parse_stage_publish(rows, n_lines)
        records = decoder.records_of(rows, n_lines)
        staged = self._stage(records)
        if staged == 0:
            return 0
        if not self.outputs:
            self.events_published += staged
            self.snapshots_published += self._n_snaps
            return staged
        return self._publish()

    def _step_lines(self, frames: list, lines: bytes) -> int | None:
        """Trades, best bid/asks and depth diffs continuing a live book, from their bytes to the rings
        in one kernel call (``live_publish_nb.step_lines``); None if the batch holds anything else
        (nothing done)."""
        n_frames = len(frames)
        decoder = self.decoder
        market = decoder.market_index[frames[0][2]]
        buf = np.frombuffer(lines, np.uint8)
        counts = self._counts
        C = live_publish_nb
        estimate = 2 * n_frames  # canonical rows (two a bbo line; a depth diff's are its levels)
        for _ in range(2):
            state = self._ready_call_state(estimate)
            counts[C.C_ROOM] = self._reserve_budget + 2 * estimate + 2  # far-level room, in records
            live_publish_nb.step_lines(buf, n_frames, market, decoder.next_line_no, self.events_published, state)
            need = int(counts[C.C_NEED])
            if not need:
                break
            estimate = need  # more levels than the estimate: room for them, once more
        n_rows = int(counts[C.C_ROWS])
        if n_rows < 0:
            return None
        self._reserve_budget -= max(0, 2 * (n_rows - estimate))
        decoder.fast_taken(frames, lines, self._fast_table, int(counts[C.C_BBOS]), int(counts[C.C_TRADES]),
                           int(counts[C.C_BBOS_WITHOUT_EXCH]), int(counts[C.C_DEPTHS]), int(counts[C.C_DEPTH_ROWS]),
                           int(counts[C.C_DEPTHS_WITHOUT_LEVELS]))
        return self._after_call(n_rows)

    def take_read(self, market: str, buf: bytearray, recv_ns: int) -> tuple[int, int, int] | None:
        """The network thread's shortcut for one socket read of ``market``'s connection (``buf``: the
        connection's bytes after the handshake): if it holds only whole data frames of trades, best
        bid/asks and diffs continuing live books, and nothing is queued or held back before it,
        ``live_read_nb.step_read`` takes them from the bytes to the rings in one call. Returns (bytes
        taken from the start of ``buf``, frames, their payload bytes), or None: nothing was done, the
        connection splits the read and queues the frames as before."""
        # (the read's receive time is stamped: what runs before the kernel counts in its latency, so
        # the checks are attribute reads and the bundle is rebuilt only when an array behind it moved)
        if not self._reads_direct or self.queue.items or self.pending or self._network_error is not None:
            return None
        if not self._step_lock.acquire(blocking=False):
            return None
        try:
            decoder = self.decoder
            state, key = self._call_state, self._call_key
            if state is None or self._reserve_budget < _READ_RECORDS or key[0] is not decoder.out \
                    or key[1] is not self._staged or key[2] is not self.books.arrays:
                state = self._ready_call_state(_READ_ROWS)
                self._reserve_budget += _READ_RECORDS  # (taken by the room made: what the read uses goes below)
            counts = self._counts
            counts[live_publish_nb.C_ROOM] = self._reserve_budget
            view = np.frombuffer(buf, np.uint8)
            try:
                taken = live_read_nb.step_read(view, len(view), recv_ns, decoder.market_index[market],
                                               decoder.next_line_no, self.events_published, state, self._read_frames,
                                               self._read_lines)
            finally:
                del view  # (the connection resizes buf next)
            if not taken:
                return None
            # (after the publish: what follows no longer counts in this read's latency, but a read
            # arriving meanwhile waits for it)
            C = live_publish_nb
            c = counts.tolist()
            n_rows = c[C.C_ROWS]
            n_frames = c[live_read_nb.C_READ_FRAMES]
            try:
                self._reserve_budget -= 2 * n_rows + 2
                decoder.read_taken(market, n_frames, self._read_lines, self._fast_table, c[C.C_BBOS], c[C.C_TRADES],
                                   c[C.C_BBOS_WITHOUT_EXCH], c[C.C_DEPTHS], c[C.C_DEPTH_ROWS],
                                   c[C.C_DEPTHS_WITHOUT_LEVELS], c[C.C_NEW_SYMBOLS] > 0)
                self._after_call(n_rows, c)
            except Exception as exc:  # the frames are in the rings: not the connection's fault, not to be
                self._network_error = exc  # taken again; the feed's thread raises it (as a step's error)
            return taken, n_frames, c[live_read_nb.C_READ_BYTES]
        except Exception as exc:  # before anything was taken: the queue's path gets the read
            self._network_error = exc
            return None
        finally:
            self._step_lock.release()

    def _ready_call_state(self, n_lines: int):
        """Room for the records of ``n_lines`` canonical rows, and the bundle over the arrays as they
        are then."""
        decoder = self.decoder
        if len(decoder.out) < 2 * n_lines + 2:  # (the parser's bound on records per row)
            decoder.out = np.zeros(2 * n_lines + 2, decoder.out.dtype)
        self._make_room(decoder.out, 2 * n_lines + 2)
        state = self._call_state
        if state is None or self._call_key[0] is not decoder.out or self._call_key[1] is not self._staged \
                or self._call_key[2] is not self.books.arrays:
            state = self._call_state_for(decoder.parse_args()[1:], decoder.out)
        return state

    def _parse_stage_publish(self, rows: np.ndarray, n_lines: int) -> int:
        """The batch's rows parsed, staged and published by one kernel call (``live_publish_nb``)."""
        if not n_lines:
            return 0
        state = self._ready_call_state(n_lines)
        live_publish_nb.step_call(rows, self.decoder.next_line_no, self.events_published, state)
        return self._after_call(n_lines)

    def _after_call(self, n_lines: int, counts: list | None = None) -> int:
        """The feed's counters after the one call took ``n_lines`` canonical rows (``counts``: the
        call's counts as a list, if the caller has them already)."""
        decoder = self.decoder
        rings, outs = self._one_call
        if counts is None:
            counts = self._counts.tolist()
        n, staged, snaps, *written = counts[:live_publish_nb.N_COUNTS]
        decoder.parsed(n_lines, n)
        self._n_staged, self._n_snaps = staged, snaps
        if staged == 0:
            return 0
        if not self.outputs:
            self.events_published += staged
            self.snapshots_published += snaps
            return staged
        for out, n_written in zip(outs, written):
            if out is not None:
                out.pos = n_written
                out.written += n_written
        self._unpublished = True
        if not self.pending:
            self.events_published += staged
            self.snapshots_published += snaps
            self._latency_recorded = True
        else:  # a full block ring took part: ``_publish`` carries on from ``pos`` (latency of the rest too)
            self._latency_recorded = outs[0] is None or written[0] >= staged
        total = sum(written)
        if total == 0:
            self.blocked += 1
        return total

    def _call_state_for(self, parser_args: tuple, out: np.ndarray):
        """The one call's bundle (``live_publish_nb.LiveCallState``) over the feed's arrays as they
        are now, kept until one of them is replaced (a bigger buffer, the books' far levels grown)."""
        rings, _ = self._one_call
        self._call_state = live_publish_nb.new_call_state(
            tuple(parser_args),
            (self.books.arrays, self.book_levels, self._staged, self._snaps, self._scratch_px, self._scratch_qty,
             self.hist_exch_to_recv),
            rings, (self.hist_recv_to_publish, self._counts, self._fast_table, *self.decoder.sync_tables,
                    self._sync_rows, self._scan_scratch))
        self._call_key = (out, self._staged, self.books.arrays)
        return self._call_state

    def _make_room(self, source: np.ndarray, n: int) -> None:
        """Staging room for ``n`` records of ``source`` (the decoder's buffer, the stage kernel's
        source), and far-level room in the books."""
        if len(self._staged) < n:
            self._staged = load_layout("market_event").zeros(2 * n)
            self._snaps = load_layout("book_snapshot").zeros(2 * n)
        if source is not self._source_buffer:  # the decoder's buffer (re)allocated: the kernel's source
            self._sources[0] = source
            self._source_buffer = source
        if self._reserve_budget < n:  # far-level room for the next batches at once (reserve is not free)
            self._reserve_budget = max(n, _RESERVE_EVENTS)
            self.books.reserve(self._reserve_budget)
        self._reserve_budget -= n

    def _stage(self, records: np.ndarray) -> int:
        n = len(records)
        self._make_room(records.base if records.base is not None else records, n)
        self._cursors[0] = 0
        offset = self.decoder.clock_offset_ns
        self._offsets[0] = offset if offset is not None else 0
        staged, snaps = replay_nb.stage(
            self._sources, self._cursors, self._offsets, 0, _NO_LIMIT, n, self._staged,
            self.events_published, self._rstate, self.books.arrays, self.book_levels, self._snaps,
            self._scratch_px, self._scratch_qty, self.hist_exch_to_recv)
        self._n_staged, self._n_snaps = int(staged), int(snaps)
        self._latency_recorded = False
        for out in self.outputs:
            out.pos = 0
        self._unpublished = True
        return self._n_staged

    def _publish(self) -> int:
        written = 0
        for out in self.outputs:
            staged = self._snaps if out.is_snapshot else self._staged
            stop = self._n_snaps if out.is_snapshot else self._n_staged
            if out.pos >= stop:
                continue
            publish_ts = time.perf_counter_ns()
            wall = time.time_ns()
            n = int(replay_nb.publish(out.ring.ctrl, out.ring.records, staged, out.pos, stop, publish_ts, out.drop))
            if n and not out.is_snapshot and not self._latency_recorded:
                live_latency_nb.receive_to_publish(self.hist_recv_to_publish, staged, out.pos, out.pos + n, wall)
                if out.pos + n >= stop:
                    self._latency_recorded = True
            out.pos += n
            out.written += n
            written += n
        if written == 0:
            self.blocked += 1
        if not self.pending:
            self.events_published += self._n_staged
            self.snapshots_published += self._n_snaps
            self._latency_recorded = True
        return written

    # ------------------------------------------------------------------ reporting
    def book_valid(self, symbol: str) -> bool:
        return self.books[symbol].valid

    def gaps(self) -> list:
        return [g for s in self.decoder.summaries().values() for g in s.gaps]

    def stats(self) -> dict:
        c = self.client.stats
        selector = getattr(self.client, "selector", None)
        summaries = self.decoder.summaries()
        return {
            "frames": self.decoder.stats.frames,
            "events_published": self.events_published,
            "snapshots_published": self.snapshots_published,
            "connects": c.connects, "disconnects": c.disconnects, "stalls": c.stalls,
            "snapshots": c.snapshots, "snapshot_errors": c.snapshot_errors,
            "gaps": len(self.gaps()), "interruptions": self.decoder.stats.interruptions,
            "rejects": {m: dict(s.rejects) for m, s in summaries.items() if s.rejects},
            "ignored_streams": {m: dict(s.ignored_streams) for m, s in summaries.items() if s.ignored_streams},
            "dropped": {m: dict(s.dropped) for m, s in summaries.items() if s.dropped},
            "row_rejects": self.decoder.stats.row_rejects,
            "clock_offset_ns": self.clock_offset_ns,
            "queued_frames": self.frames_waiting,
            "frames_dropped": self.frames_dropped,
            "network": self.network,
            "net_restarts": self.net_restarts,
            "frame_ring_errors": self.net.sequence_errors if self.net is not None else 0,
            "rings": {o.ring.name: o.written for o in self.outputs},
            "poll": self.poll if self.net is None else "block",
            "polls": getattr(selector, "polls", 0),  # the network loop's epoll_wait calls (spin)
            "idle_calls": getattr(selector, "idle_calls", 0),
            "idle_errors": getattr(selector, "idle_errors", 0),
            "rehearsals": self.rehearsals,
        }


_STAND_INS: dict = {}


def _stand_in_ring(layout: str):
    """A private ring of ``layout`` standing for a ring the feed does not have (its flag is off: never
    written), so the one-call kernel keeps one signature whatever the outputs."""
    ring = _STAND_INS.get(layout)
    if ring is None:
        from hftshm.transport.ring import Ring

        ring = _STAND_INS[layout] = Ring.private(layout, 8)
    return ring


def _warm_up_frames(symbol: str) -> list[str]:
    s = symbol.lower()
    return [
        '{"stream":"%s@depth@0ms","data":{"e":"depthUpdate","E":1,"T":1,"s":"%s","U":1,"u":2,"pu":0,'
        '"b":[["1.0","1.0"]],"a":[["2.0","1.0"]]}}' % (s, symbol),
        '{"stream":"%s@depthSnapshot","data":{"lastUpdateId":1,"E":1,"T":1,"bids":[["1.0","1.0"]],'
        '"asks":[["2.0","1.0"]]}}' % s,
        '{"stream":"%s@depth@0ms","data":{"e":"depthUpdate","E":2,"T":2,"s":"%s","U":3,"u":4,"pu":2,'
        '"b":[["1.0","2.0"]],"a":[]}}' % (s, symbol),
        '{"stream":"%s@trade","data":{"e":"trade","E":3,"T":3,"s":"%s","t":1,"p":"1.0","q":"1.0","X":"MARKET",'
        '"m":true}}' % (s, symbol),
        '{"stream":"%s@bookTicker","data":{"e":"bookTicker","u":5,"s":"%s","b":"1.0","B":"1.0","a":"2.0",'
        '"A":"1.0","T":4,"E":4}}' % (s, symbol),
    ]
