"""Wait strategies: construction from config names, back-off progression, parking on several rings
and being woken by a commit on any of them, and a blocked producer woken by a release."""

from __future__ import annotations

import threading
import time

import pytest

from hftshm.config import ConfigError
from hftshm.transport import ring_nb
from hftshm.transport.doorbell import Parker, wait_for_space
from hftshm.transport.ring import Ring
from hftshm.transport.testing import no_segment_leaks, unique_name
from hftshm.transport.wait import STRATEGIES, BusySpin, SpinPark, SpinYield, WaitStrategy

LONG_PARK_S = 30.0  # a missed wake-up would hang the test into its timeout rather than pass


@pytest.fixture(autouse=True)
def _no_leaks():
    with no_segment_leaks():
        yield


@pytest.fixture
def rings():
    made = [Ring.create(unique_name(f"wait{i}"), "market_event", 8) for i in range(2)]
    yield made
    for r in made:
        r.unlink()
        r.close()


def test_from_config_builds_each_strategy():
    assert isinstance(WaitStrategy.from_config("busy-spin"), BusySpin)
    assert WaitStrategy.from_config("spin-yield", spins=7).spins == 7
    park = WaitStrategy.from_config("spin-park", spins=1, yields=2, park_timeout_ms=5)
    assert isinstance(park, SpinPark) and (park.spins, park.yields, park.park_timeout_ms) == (1, 2, 5.0)
    assert set(STRATEGIES) == {"busy-spin", "spin-yield", "spin-park"}


@pytest.mark.parametrize("name, params, message", [
    ("sleep", {}, "wait strategy 'sleep' is unknown; allowed: busy-spin, spin-yield, spin-park"),
    ("spin-yield", {"yields": 3}, "has no parameter\\(s\\) yields; allowed: spins"),
    ("busy-spin", {"spins": 3}, "allowed: none"),
    ("spin-park", {"spins": "many"}, "spins must be a number >= 0, found 'many'"),
])
def test_config_errors_name_allowed_values(name, params, message):
    with pytest.raises(ConfigError, match=message):
        WaitStrategy.from_config(name, **params)


def test_spin_yield_yields_only_after_spins(monkeypatch):
    yields = []
    monkeypatch.setattr("hftshm.transport.wait.os.sched_yield", lambda: yields.append(1))
    strategy = SpinYield(spins=3)
    for _ in range(5):
        strategy.idle(0)
    assert len(yields) == 2
    strategy.idle(4)
    assert strategy.idle_cycles == 0
    strategy.idle(0)
    assert len(yields) == 2, "work resets the back-off"


def test_spin_park_times_out_without_a_producer(rings):
    strategy = SpinPark(spins=0, yields=0, park_timeout_ms=1, spin_us=0).bind(rings)
    strategy.idle(0)
    strategy.idle(0)
    assert strategy.parks == 2
    assert rings[0].consumer_parks == 2 and rings[1].consumer_parks == 2
    assert rings[0].ctrl[ring_nb.d.CONSUMER_PARKED] == 0, "parked flag cleared after the park"


def test_spin_park_spins_for_spin_us_of_idle_time_before_parking(rings):
    strategy = SpinPark(spins=0, yields=0, park_timeout_ms=1, spin_us=50_000).bind(rings)
    for _ in range(20):
        strategy.idle(0)  # cheap idle cycles: far fewer than 50 ms of them
    assert strategy.parks == 0
    time.sleep(0.06)
    strategy.idle(0)
    assert strategy.parks == 1
    strategy.idle(3)  # work: the next idle stretch spins its 50 ms again
    strategy.idle(0)
    assert strategy.parks == 1


def test_park_returns_at_once_when_data_is_waiting(rings):
    rings[1].try_write({"seq": 1})
    parker = Parker(rings, timeout_s=LONG_PARK_S)
    assert parker.park() is True
    assert parker.parks == 0, "the re-check after arming found data: no sleep"


@pytest.mark.parametrize("which", [0, 1])
def test_parked_process_is_woken_by_a_commit_on_any_input(rings, which):
    parker = Parker(rings, timeout_s=LONG_PARK_S)
    done = threading.Event()

    def produce():
        while not any(r.ctrl[ring_nb.d.CONSUMER_PARKED] for r in rings):
            time.sleep(0.001)
        rings[which].try_write({"seq": 5})
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert parker.park() is True
    producer.join()
    assert done.is_set() and parker.wakeups == 1
    assert rings[which].consumer_wakes == 1 and rings[1 - which].consumer_wakes == 0
    assert rings[which].try_read()["seq"] == 5


def test_blocked_producer_is_woken_by_release(rings):
    ring = rings[0]
    for i in range(8):
        assert ring.try_write({"seq": i})
    assert wait_for_space(ring, 1, timeout_s=0.001) is False

    def consume():
        while not ring.ctrl[ring_nb.d.PRODUCER_PARKED]:
            time.sleep(0.001)
        ring.try_read()

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert wait_for_space(ring, 1, timeout_s=LONG_PARK_S) is True
    consumer.join()
    assert ring.producer_wakes == 1


@pytest.mark.parametrize("name", ["busy-spin", "spin-yield", "spin-park"])
def test_await_space_for_block_mode_producers(rings, name):
    ring = rings[0]
    strategy = WaitStrategy.from_config(name)
    assert strategy.await_space(ring, 8) is True
    for i in range(8):
        ring.try_write({"seq": i})
    assert strategy.await_space(ring, 1, timeout_s=0.01) is False
    threading.Timer(0.02, ring.try_read).start()
    assert strategy.await_space(ring, 1, timeout_s=LONG_PARK_S) is True


def test_worker_blocked_on_a_full_output_parks_until_its_consumer_frees_space(rings):
    inbox, outbox = rings
    inbox.try_write({"seq": 1})  # work is waiting, but the output is full: the worker cannot do it
    for i in range(8):
        outbox.try_write({"seq": i})
    parker = Parker([inbox], timeout_s=LONG_PARK_S, outputs=[outbox])

    def downstream():
        while not outbox.ctrl[ring_nb.d.PRODUCER_PARKED]:
            time.sleep(0.001)
        outbox.try_read()

    consumer = threading.Thread(target=downstream)
    consumer.start()
    assert parker.park() is True
    consumer.join()
    assert parker.parks == 1 and outbox.producer_wakes == 1 and outbox.producer_parks == 1


def test_input_data_with_room_in_outputs_returns_without_parking(rings):
    inbox, outbox = rings
    inbox.try_write({"seq": 1})
    parker = Parker([inbox], timeout_s=LONG_PARK_S, outputs=[outbox])
    assert parker.park() is True and parker.parks == 0
