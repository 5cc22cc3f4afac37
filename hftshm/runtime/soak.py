"""Sequence-checking workers: a source, a relay and a sink that prove a topology moves every record.

The source writes records whose fields are all derived from their sequence number; the relay copies
batches from its input ring to its output ring; the sink checks every record it sees: in order, no
gap, no torn record (every field agrees with the sequence). A relay killed between publishing and
releasing delivers its last batch again after the restart, so the sink counts duplicates apart from
gaps: duplicates are the documented at-least-once behaviour, gaps are loss.

``hftshm.runtime.soak`` workers are used by the concurrency tests and by ``hftshm bench pipeline``'s
transport check; they need no market data.
"""

from __future__ import annotations

import numpy as np

from hftshm.runtime.worker import Worker, WorkerContext

# field patterns, all derived from seq so a torn record (half old, half new) cannot pass
_TS_MUL = 7
_ID_XOR = 0x5A5A_5A5A


def fill_records(batch: np.ndarray, first_seq: int) -> None:
    seq = np.arange(first_seq, first_seq + len(batch), dtype=np.int64)
    batch["seq"] = seq
    batch["exch_ts_ns"] = seq * _TS_MUL + 1
    batch["local_ts_ns"] = -seq
    batch["price"] = seq.astype(np.float64) * 0.5
    batch["qty"] = seq.astype(np.float64)
    batch["update_id"] = seq ^ _ID_XOR


def torn_count(batch: np.ndarray) -> int:
    seq = batch["seq"]
    ok = ((batch["exch_ts_ns"] == seq * _TS_MUL + 1) & (batch["local_ts_ns"] == -seq)
          & (batch["price"] == seq.astype(np.float64) * 0.5) & (batch["qty"] == seq.astype(np.float64))
          & (batch["update_id"] == (seq ^ _ID_XOR)))
    return int(len(batch) - np.count_nonzero(ok))


class SequenceSource(Worker):
    """Publishes ``count`` records in random batch sizes (1..max_batch) to its one output ring."""

    COUNTER_NAMES = ("published",)

    def __init__(self, count: int = 1_000_000, max_batch: int = 512, seed: int = 1):
        self.count = int(count)
        self.max_batch = int(max_batch)
        self.rng = np.random.default_rng(seed)

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        (self.out,) = ctx.outputs.values()
        # the ring's producer cursor is the truth after a restart: everything below it was published
        self.next_seq = self.out.producer_position

    def do_work(self) -> int:
        if self.next_seq >= self.count:
            return 0
        want = min(int(self.rng.integers(1, self.max_batch + 1)), self.count - self.next_seq)
        batch = self.out.claim(want)
        if len(batch) == 0:
            return 0
        fill_records(batch, self.next_seq)
        self.out.commit(len(batch))
        self.next_seq += len(batch)
        self.ctx.counters[0] = self.next_seq
        return len(batch)

    def on_drain(self) -> int:
        return 0  # a source stops producing when asked to drain

    def is_done(self) -> bool:
        return self.next_seq >= self.count


class SequenceRelay(Worker):
    """Copies records from its input ring to its output ring in batches of up to ``max_batch``."""

    COUNTER_NAMES = ("relayed",)

    def __init__(self, max_batch: int = 1024):
        self.max_batch = int(max_batch)

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        (self.inp,) = ctx.inputs.values()
        (self.out,) = ctx.outputs.values()

    def do_work(self) -> int:
        batch = self.inp.poll(self.max_batch)
        if len(batch) == 0:
            return 0
        slots = self.out.claim(len(batch))
        n = len(slots)
        if n == 0:
            return 0
        slots[:] = batch[:n]
        self.out.commit(n)
        self.inp.release(n)
        self.ctx.counters[0] += n
        return n


class SequenceSink(Worker):
    """Checks every record: sequence in order (duplicates counted apart), no gap, no torn record."""

    COUNTER_NAMES = ("received", "next_expected", "duplicates", "gaps", "torn", "reordered")

    def __init__(self, max_batch: int = 1024):
        self.max_batch = int(max_batch)

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        (self.inp,) = ctx.inputs.values()

    def do_work(self) -> int:
        batch = self.inp.poll(self.max_batch)
        n = len(batch)
        if n == 0:
            return 0
        c = self.ctx.counters
        c[4] += torn_count(batch)
        seq = batch["seq"]
        expected = c[1]
        # within a batch sequences must step by one; a duplicate run restarts below `expected`
        steps = np.diff(seq)
        c[5] += int(np.count_nonzero((steps != 1) & (steps > 0)))  # forward jumps inside a batch
        first, last = int(seq[0]), int(seq[-1])
        if first > expected:
            c[3] += first - expected
        c[2] += max(0, min(last + 1, expected) - first)
        c[1] = max(expected, last + 1)
        c[0] += n
        self.inp.release(n)
        return n
