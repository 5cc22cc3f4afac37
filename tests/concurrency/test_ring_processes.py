"""Producer and consumer in different processes: millions of records with random batch sizes and
wrap-around arrive complete, in order and untorn; a parked consumer is woken (and a busy one never
is); a SIGKILLed consumer's successor resumes from the last released cursor."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import numpy as np
import pytest
from numba import njit

from hftshm.transport import ring_nb
from hftshm.transport.clock_nb import monotonic_ns
from hftshm.transport.doorbell import Parker, wait_for_space
from hftshm.transport.ring import Ring
from hftshm.transport.testing import no_segment_leaks, unique_name
from hftshm.transport.wait import WaitStrategy
from hftshm.transport.wait_nb import backoff

FORK = multiprocessing.get_context("fork")
TIMEOUT_S = 120


@pytest.fixture(autouse=True)
def _no_leaks():
    with no_segment_leaks():
        yield


@njit(nogil=True, inline="always")
def _next_random(state):
    state ^= (state << 13) & 0xFFFFFFFFFFFF
    state ^= state >> 7
    state ^= (state << 17) & 0xFFFFFFFFFFFF
    return state


@njit(nogil=True, inline="always")
def _fill(record, seq):
    # every field derived from seq: a torn or stale record shows as a mismatch in some field
    record.seq = seq
    record.exch_ts_ns = seq * 7 + 1
    record.local_ts_ns = ~seq
    record.publish_ts_ns = seq ^ 0x5555_5555_5555
    record.price = seq * 0.5
    record.qty = -float(seq)
    record.update_id = seq * 3
    record.symbol_id = seq & 0xFFFF
    record.kind = seq & 0xFF
    record.side = (seq >> 8) & 0xFF
    record.flags = seq & 0xFFFF_FFFF


@njit(nogil=True, inline="always")
def _intact(record, seq):
    return (record.seq == seq and record.exch_ts_ns == seq * 7 + 1 and record.local_ts_ns == ~seq
            and record.publish_ts_ns == seq ^ 0x5555_5555_5555 and record.price == seq * 0.5
            and record.qty == -float(seq) and record.update_id == seq * 3 and record.symbol_id == seq & 0xFFFF
            and record.kind == seq & 0xFF and record.side == (seq >> 8) & 0xFF and record.flags == seq & 0xFFFF_FFFF)


@njit(nogil=True)
def produce(ctrl, records, total, max_batch, seed):
    """Publish sequences 0..total-1 in random batch sizes; returns failed claims (ring full)."""
    state = seed
    written = 0
    full = 0
    attempt = 0
    while written < total:
        state = _next_random(state)
        n = 1 + state % max_batch
        if n > total - written:
            n = total - written
        seq = ring_nb.try_claim(ctrl, n)
        while seq < 0:
            full += 1
            backoff(attempt)
            attempt += 1
            seq = ring_nb.try_claim(ctrl, n)
        attempt = 0
        for i in range(n):
            _fill(records[ring_nb.slot(ctrl, seq + i)], written + i)
        ring_nb.commit(ctrl, seq, n)
        written += n
    return full


@njit(nogil=True)
def consume(ctrl, records, total, max_batch, seed, first_expected):
    """Read until ``total`` records; returns (received, bad records, out-of-order records)."""
    state = seed
    expected = first_expected
    bad = 0
    disorder = 0
    received = 0
    attempt = 0
    while received < total:
        state = _next_random(state)
        n = ring_nb.try_poll(ctrl, 1 + state % max_batch)
        if n == 0:
            backoff(attempt)
            attempt += 1
            continue
        attempt = 0
        base = ring_nb.consumer_position(ctrl)
        for i in range(n):
            record = records[ring_nb.slot(ctrl, base + i)]
            if record.seq != expected:
                disorder += 1
            if not _intact(record, base + i):
                bad += 1
            expected = record.seq + 1
        ring_nb.release(ctrl, n)
        received += n
    return received, bad, disorder


def _producer_main(name, total, max_batch, seed):
    ring = Ring.attach(name, "market_event", role="producer")
    produce(ring.ctrl, ring.records, total, max_batch, seed)
    ring.close()


def _start_producer(name, total, max_batch, seed=12345):
    process = FORK.Process(target=_producer_main, args=(name, total, max_batch, seed), daemon=True)
    process.start()
    return process


def _warm_kernels():
    with Ring.create(unique_name("warm"), "market_event", 8) as ring:
        try:
            produce(ring.ctrl, ring.records, 8, 4, 1)
            consume(ring.ctrl, ring.records, 8, 4, 1, 0)
        finally:
            ring.unlink()


@pytest.mark.parametrize("capacity, max_batch, total", [(1024, 64, 3_000_000), (64, 64, 1_000_000),
                                                        (8, 3, 300_000)])
def test_records_arrive_complete_in_order_and_untorn(capacity, max_batch, total):
    _warm_kernels()
    with Ring.create(unique_name("spsc"), "market_event", capacity) as ring:
        try:
            producer = _start_producer(ring.name, total, max_batch)
            ring.register_consumer()
            received, bad, disorder = consume(ring.ctrl, ring.records, total, max_batch, 99, 0)
            producer.join(TIMEOUT_S)
            assert producer.exitcode == 0
            assert (received, bad, disorder) == (total, 0, 0)
            assert ring.producer_position == ring.consumer_position == total
            assert ring.consumer_wakes == 0, "a consumer that never parks is never woken"
            assert ring.drops == 0
            assert capacity > 64 or ring.full_events > 0, "a small ring must have filled up"
        finally:
            ring.unlink()


def _python_batch_producer(name, total):
    ring = Ring.attach(name, "market_event", role="producer")
    written = 0
    while written < total:
        view = ring.claim(min(500, total - written))
        if len(view) == 0:
            ring.wait_for_space(1)
            continue
        seqs = np.arange(written, written + len(view))
        view["seq"] = seqs
        view["price"] = seqs * 0.5
        view["flags"] = seqs & 0xFFFF_FFFF
        ring.commit()
        written += len(view)
    ring.close()


def test_python_batch_api_across_processes():
    total = 200_000
    with Ring.create(unique_name("pyb"), "market_event", 256) as ring:
        try:
            producer = FORK.Process(target=_python_batch_producer, args=(ring.name, total), daemon=True)
            producer.start()
            ring.register_consumer()
            strategy = WaitStrategy.from_config("spin-park", spins=10, yields=10, park_timeout_ms=50).bind([ring])
            got = []
            while sum(len(g) for g in got) < total:
                view = ring.poll(300)
                if len(view):
                    got.append(view[["seq", "price", "flags"]].copy())
                    ring.release()
                strategy.idle(len(view))
            producer.join(TIMEOUT_S)
            assert producer.exitcode == 0
            records = np.concatenate(got)
            assert np.array_equal(records["seq"], np.arange(total))
            assert np.array_equal(records["price"], np.arange(total) * 0.5)
            assert np.array_equal(records["flags"], np.arange(total))
        finally:
            ring.unlink()


def _bursty_producer(name, bursts, per_burst, gap_s):
    ring = Ring.attach(name, "market_event", role="producer")
    for burst in range(bursts):
        for i in range(per_burst):
            while not ring.try_write({"seq": burst * per_burst + i}):
                ring.wait_for_space(1)
        time.sleep(gap_s)
    ring.close()


def test_parked_consumer_is_woken_by_the_producer():
    bursts, per_burst = 40, 25
    with Ring.create(unique_name("park"), "market_event", 64) as ring:
        try:
            ring.register_consumer()
            # a 60 s park timeout: without a doorbell the consumer would sleep past the test timeout
            strategy = WaitStrategy.from_config("spin-park", spins=0, yields=0, park_timeout_ms=60_000).bind([ring])
            producer = FORK.Process(target=_bursty_producer, args=(ring.name, bursts, per_burst, 0.005), daemon=True)
            producer.start()
            seqs = []
            while len(seqs) < bursts * per_burst:
                record = ring.try_read()
                if record is not None:
                    seqs.append(int(record["seq"]))
                strategy.idle(record is not None)
            producer.join(TIMEOUT_S)
            assert seqs == list(range(bursts * per_burst))
            assert strategy.parks > 0 and ring.consumer_parks == strategy.parks
            assert 0 < ring.consumer_wakes <= strategy.parker.arms, "at most one wake per park attempt"
        finally:
            ring.unlink()


def _consumer_that_dies(name, release_upto, hold, ready):
    ring = Ring.attach(name, "market_event", role="consumer")
    view = ring.poll(release_upto)
    assert len(view) == release_upto
    ring.release()
    held = ring.poll(hold)  # read but never released: must be delivered again
    assert len(held) == hold
    ready.set()
    time.sleep(600)


def test_restarted_consumer_resumes_from_last_released_cursor():
    total, released, held = 200, 70, 30
    with Ring.create(unique_name("restart"), "market_event", 256) as ring:
        try:
            for seq in range(total):
                assert ring.try_write({"seq": seq})
            ready = FORK.Event()
            doomed = FORK.Process(target=_consumer_that_dies, args=(ring.name, released, held, ready), daemon=True)
            doomed.start()
            assert ready.wait(TIMEOUT_S)
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.join(TIMEOUT_S)
            assert doomed.exitcode == -signal.SIGKILL
            successor = Ring.attach(ring.name, "market_event", role="consumer")
            try:
                assert successor.consumer_position == released
                seqs = []
                while (record := successor.try_read()) is not None:
                    seqs.append(int(record["seq"]))
                assert seqs == list(range(released, total)), "unreleased records again, none lost"
            finally:
                successor.close()
        finally:
            ring.unlink()


@njit(nogil=True)
def _produce_with_random_gaps(ctrl, records, total, max_gap_ns, seed):
    state = seed
    for seq in range(total):
        state = _next_random(state)
        until = monotonic_ns() + state % max_gap_ns
        while monotonic_ns() < until:
            pass
        claimed = ring_nb.try_claim(ctrl, 1)
        while claimed < 0:
            claimed = ring_nb.try_claim(ctrl, 1)
        _fill(records[ring_nb.slot(ctrl, claimed)], seq)
        ring_nb.commit(ctrl, claimed, 1)
        # lock-step: the next record only after this one was consumed, so a lost wake-up is never
        # rescued by a later commit and shows as a park that times out
        while ring_nb.consumer_position(ctrl) <= seq:
            pass


def _gappy_producer_main(name, total, max_gap_ns):
    ring = Ring.attach(name, "market_event", role="producer")
    _produce_with_random_gaps(ring.ctrl, ring.records, total, max_gap_ns, 777)
    ring.close()


def test_no_wake_up_is_lost_across_thousands_of_parks():
    """Every park that ends by timeout instead of a doorbell would be a lost wake-up (records were
    published but the consumer slept on): with random gaps around the park/publish race, none may."""
    total = 2000
    with Ring.create(unique_name("race"), "market_event", 64) as ring:
        try:
            ring.register_consumer()
            _produce_with_random_gaps(ring.ctrl, ring.records, 0, 1, 1)  # compile before forking
            parker = Parker([ring], timeout_s=5.0)
            producer = FORK.Process(target=_gappy_producer_main, args=(ring.name, total, 100_000), daemon=True)
            producer.start()
            received = 0
            timeouts = 0
            while received < total:
                n = ring_nb.try_poll(ring.ctrl, 64)
                if n:
                    ring_nb.release(ring.ctrl, n)
                    received += n
                elif not parker.park():
                    timeouts += 1
            producer.join(TIMEOUT_S)
            assert received == total
            assert parker.parks > 100, "the gaps must make the consumer park often"
            assert timeouts == 0, f"{timeouts} parks ended by timeout: wake-ups were lost"
        finally:
            ring.unlink()


def _slow_consumer_main(name, total, gap_s):
    ring = Ring.attach(name, "market_event", role="consumer")
    rng = np.random.default_rng(5)
    received = 0
    while received < total:
        if ring.try_read() is not None:
            received += 1
            if rng.random() < 0.3:
                time.sleep(gap_s * rng.random())
    ring.close()


def test_blocked_producer_is_never_left_parked():
    total = 2000
    with Ring.create(unique_name("block"), "market_event", 4) as ring:
        try:
            ring.register_producer()
            consumer = FORK.Process(target=_slow_consumer_main, args=(ring.name, total, 0.0005), daemon=True)
            consumer.start()
            timeouts = 0
            for seq in range(total):
                while not ring.try_write({"seq": seq}):
                    if not wait_for_space(ring, 1, timeout_s=20.0):
                        timeouts += 1
            consumer.join(TIMEOUT_S)
            assert consumer.exitcode == 0
            assert ring.producer_parks > 10
            assert timeouts == 0, "a release that freed space did not wake the parked producer"
        finally:
            ring.unlink()
