"""A kill switch set by another process, in the middle of a batch, stops the very next checks.

The parent checks one long batch of valid orders; a child process attached to the same shared-memory
control block waits until the kernel is under way, sets the kill switch (as ``hftshm kill-switch on``
does), fences, and reads how many checks had completed. Every order before the switch passes, none
after it, and the first KILL_SWITCH reject comes within a check or two of the moment of the write.
"""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np

from hftshm.codes import Reason
from hftshm.risk.control import CHECKS_WORD, KILL_SWITCH_WORD, ControlBlock
from hftshm.risk.testing import engine, intents
from hftshm.transport.testing import unique_name

N = 2_000_000
VALID_EVERY = 100  # 1 in 100 is a valid order (the rest are rejected BAD_QTY without touching the table)


def _operator(name: str, start_after: int, ready, result) -> None:
    from hftshm.transport.ring_nb import full_fence, load_word, store_word

    block = ControlBlock.attach(name)
    words = block.words
    load_word(words, CHECKS_WORD)  # compile before saying ready
    full_fence()
    ready.set()
    while load_word(words, CHECKS_WORD) < start_after:
        pass
    store_word(words, KILL_SWITCH_WORD, 1)
    full_fence()  # the write is globally visible before we read the progress counter
    result.put(int(load_word(words, CHECKS_WORD)))
    block.close()


def test_kill_switch_from_another_process_stops_the_next_check():
    control = ControlBlock.create(unique_name("ctl"))
    ctx = mp.get_context("spawn")
    try:
        eng = engine(control=control, max_position_per_symbol=1e9, max_order_size=1.0,
                     max_orders_burst=1e9, max_orders_burst_per_strategy=1e9)
        batch = np.repeat(intents({"qty": 0.0}), N)
        batch["client_order_id"] = np.arange(1, N + 1)
        batch["qty"][::VALID_EVERY] = 0.001
        eng.check(batch[:10])  # compile and warm before the race
        eng.state.table["used"] = 0
        eng.state.account[0]["open_orders"] = 0
        eng.state.symbols["pending_buy"] = 0.0
        done_before = int(control.words[CHECKS_WORD])
        ready, result = ctx.Event(), ctx.Queue()
        child = ctx.Process(target=_operator, args=(control.name, done_before + N // 10, ready, result))
        child.start()
        deadline = time.monotonic() + 180  # a busy machine may recompile the child's kernels
        while not ready.wait(0.5):
            assert child.is_alive(), f"the operator process died (exit code {child.exitcode})"
            assert time.monotonic() < deadline, "the operator process did not start"
        decisions = eng.check(batch)
        child.join(30)
        seen_after_write = result.get(timeout=5) - done_before
        killed = np.flatnonzero(decisions == Reason.KILL_SWITCH)
        assert len(killed) > 0, "the switch landed after the batch: the machine stalled the child"
        first = int(killed[0])
        # every intent from the first kill reject on is rejected for it; before it, valid ones passed
        assert (decisions[first:] == Reason.KILL_SWITCH).all()
        before = decisions[:first]
        assert ((before == 0) | (before == Reason.BAD_QTY)).all()
        assert (before[::VALID_EVERY] == 0).all()
        # the write was visible when seen_after_write checks had completed: the check in flight at
        # that moment may still pass, the one after it must not
        assert first <= seen_after_write + 1, (first, seen_after_write)
    finally:
        control.close()
        control.unlink()
