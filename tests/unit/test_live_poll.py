"""The network loop's busy-poll selector (hftshm.feed.live_poll): ready sockets come back at once,
nothing ready spins until the timeout, the idle hook runs at its period and cannot kill the loop."""

from __future__ import annotations

import asyncio
import logging
import selectors
import socket
import threading
import time

import pytest

from hftshm.feed.live_poll import BusyPollSelector


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_a_ready_socket_is_returned_promptly_and_the_wait_spins_instead_of_blocking(pair):
    reader, writer = pair
    with BusyPollSelector() as selector:
        key = selector.register(reader, selectors.EVENT_READ)
        assert selector.select(0) == [] and selector.polls == 1  # timeout 0: one poll, no wait
        sent = []
        timer = threading.Timer(0.03, lambda: (sent.append(time.perf_counter()), writer.send(b"x")))
        timer.start()
        ready = selector.select(5.0)
        returned = time.perf_counter()
        timer.join()
        assert ready == [(key, selectors.EVENT_READ)]
        assert returned - sent[0] < 0.5  # not the 5 s timeout: the poll saw it
        assert selector.polls > 10  # it polled many times meanwhile (a blocking epoll_wait is one call)


def test_nothing_ready_returns_empty_after_the_timeout(pair):
    reader, _ = pair
    with BusyPollSelector() as selector:
        selector.register(reader, selectors.EVENT_READ)
        start = time.perf_counter()
        assert selector.select(0.02) == []
        assert time.perf_counter() - start >= 0.02


def test_the_idle_hook_runs_at_its_period_measured_from_the_end_of_the_last_call(pair):
    reader, _ = pair
    calls = []
    with BusyPollSelector(idle=lambda: calls.append(time.perf_counter()), idle_period_s=0.0005) as selector:
        selector.register(reader, selectors.EVENT_READ)
        selector.select(0.05)
    assert 5 <= len(calls) <= 101 and selector.idle_calls == len(calls)  # ~0.5 ms apart over 50 ms of idle

    def slow():  # 2 ms a call: the next is due 0.5 ms after this one ends, so at most one per 2.5 ms
        calls.append(time.perf_counter())
        time.sleep(0.002)

    calls.clear()
    with BusyPollSelector(idle=slow, idle_period_s=0.0005) as selector:
        selector.register(reader, selectors.EVENT_READ)
        selector.select(0.05)
    assert 1 <= len(calls) <= 21
    assert min(b - a for a, b in zip(calls, calls[1:])) >= 0.0025


def test_no_idle_call_while_sockets_are_ready(pair):
    reader, writer = pair
    writer.send(b"x")
    calls = []
    with BusyPollSelector(idle=lambda: calls.append(1), idle_period_s=0.0005) as selector:
        selector.register(reader, selectors.EVENT_READ)
        time.sleep(0.002)  # the hook is due, but there is data: the loop gets it first
        for _ in range(100):
            assert selector.select(1.0)
    assert calls == [] and selector.idle_calls == 0


def test_a_raising_idle_hook_is_counted_logged_once_and_disabled(pair, caplog):
    reader, writer = pair
    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("rehearsal broke")

    with BusyPollSelector(idle=broken, idle_period_s=0.0005) as selector:
        key = selector.register(reader, selectors.EVENT_READ)
        with caplog.at_level(logging.ERROR, logger="hftshm.feed.live"):
            assert selector.select(0.02) == []
            assert selector.select(0.02) == []
        assert calls == [1] and selector.idle_errors == 1 and selector.idle is None
        assert len([r for r in caplog.records if "idle hook" in r.getMessage()]) == 1
        assert "rehearsal broke" in caplog.text  # with its traceback
        writer.send(b"x")
        assert selector.select(1.0) == [(key, selectors.EVENT_READ)]  # the selector still works


def test_an_asyncio_loop_on_it_runs_timers_and_cross_thread_calls():
    """What the network thread runs (``BinanceStreamClient(selector_factory=...)``): timers fire on
    time, a call from another thread (a snapshot request) wakes the spinning loop, idle calls happen."""
    idle = []
    selector = BusyPollSelector(idle=lambda: idle.append(1))
    loop = asyncio.SelectorEventLoop(selector)
    woken = []

    async def main():
        start = time.perf_counter()
        await asyncio.sleep(0.03)
        slept = time.perf_counter() - start
        done = asyncio.Event()
        threading.Timer(0.01, lambda: loop.call_soon_threadsafe(lambda: (woken.append(1), done.set()))).start()
        await asyncio.wait_for(done.wait(), 5.0)
        return slept

    try:
        slept = loop.run_until_complete(main())
    finally:
        loop.close()
    assert 0.03 <= slept < 0.5 and woken == [1]
    assert len(idle) > 10 and selector.polls > len(idle)


def test_a_non_positive_idle_period_is_refused():
    with pytest.raises(ValueError, match="idle_period_s"):
        BusyPollSelector(idle_period_s=0)
