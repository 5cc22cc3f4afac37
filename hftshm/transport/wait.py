"""Wait strategies: what a worker's runner does after a duty cycle that found no work.

How a runner uses them (one strategy per PROCESS, covering every worker the process runs):

(a) construct from the config name: ``strategy = WaitStrategy.from_config(name, **params)``
    (``ConfigError`` names the allowed strategies / parameters);
(b) register the process's doorbells: ``strategy.bind(inputs=[...], outputs=[...])`` with every ring
    its workers consume and produce into. There is no separate doorbell table: each ring header
    carries a consumer doorbell and a producer doorbell (futex words), so binding IS registration;
(c) park: call ``strategy.idle(work_done)`` after every duty cycle. spin-park spins, yields, then
    parks in ONE ``futex_waitv`` on all input doorbells (or, when inputs hold data but a block-mode
    output is full, on those outputs' producer doorbells), at most ``park_timeout_ms`` so the runner
    keeps writing heartbeats;
(d) wake: nothing to do. ``ring_nb.commit`` rings a parked consumer, ``ring_nb.release`` a parked
    producer, and only when one is parked. Out of band (a supervisor command to a parked process):
    ``Ring.wake_consumer()`` / ``ring_nb.wake_consumer_if_parked(ring.ctrl)`` on its input rings.

Example::

    strategy = WaitStrategy.from_config("spin-park", spins=100, yields=20, park_timeout_ms=50)
    strategy.bind(inputs=consumed_rings, outputs=produced_rings)
    while running:
        work = sum(worker.do_work() for worker in workers)
        strategy.idle(work)                 # work > 0 resets the back-off; 0 advances it

============  ===================================================  ===============================
name          idle behaviour                                       use when
============  ===================================================  ===============================
busy-spin     returns at once: the core is burnt, latency minimal  a dedicated core per worker
spin-yield    spins ``spins`` idle cycles, then ``sched_yield``    a core shared with a few workers
spin-park     spins (``spins`` idle cycles and ``spin_us`` of     more workers than cores (the
              idle time), yields ``yields`` times, then parks on   default): idle workers cost
              the doorbells of every bound ring until a producer   no CPU
              publishes (or ``park_timeout_ms``)
============  ===================================================  ===============================

A producer whose output ring is full in ``block`` mode (outside the runner's duty cycle) calls
``strategy.await_space(ring, n)``: the same back-off; spin-park parks on that ring's producer
doorbell, which the consumer's ``release`` rings.
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar, Iterable

from hftshm.config import ConfigError
from hftshm.transport.doorbell import DEFAULT_PARK_TIMEOUT_S, Parker, wait_for_space

DEFAULT_SPIN_US = 2000.0  # spin-park: idle time spent spinning before it yields, then parks


class WaitStrategy:
    """Base class; build one with ``WaitStrategy.from_config(name, **params)``."""

    name: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.idle_cycles = 0  # consecutive duty cycles without work

    @staticmethod
    def from_config(name: str, **params: Any) -> "WaitStrategy":
        """The strategy called ``name`` (busy-spin, spin-yield, spin-park) with its parameters."""
        cls = STRATEGIES.get(name)
        if cls is None:
            raise ConfigError(f"wait strategy {name!r} is unknown; allowed: {', '.join(STRATEGIES)}")
        unknown = sorted(set(params) - set(cls.PARAMS))
        if unknown:
            allowed = ", ".join(cls.PARAMS) or "none"
            raise ConfigError(f"wait strategy {name!r} has no parameter(s) {', '.join(unknown)}; allowed: {allowed}")
        for key, value in params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"wait strategy {name!r}: {key} must be a number >= 0, found {value!r}")
        return cls(**params)

    def bind(self, inputs: Iterable = (), outputs: Iterable = ()) -> "WaitStrategy":
        """Tell the strategy which rings this process consumes and produces (only spin-park uses
        them: it parks on the inputs' doorbells, or on a full block-mode output's)."""
        return self

    def idle(self, work_done: int) -> None:
        """Call after every duty cycle with the work it did."""
        if work_done > 0:
            self.idle_cycles = 0
        else:
            self.idle_cycles += 1
            self._back_off()

    def reset(self) -> None:
        self.idle_cycles = 0

    def _back_off(self) -> None:
        pass

    def await_space(self, ring, n: int = 1, timeout_s: float | None = None) -> bool:
        """Block-mode producer: back off until ``ring`` has ``n`` free slots. False on timeout."""
        from hftshm.transport.ring_nb import free_capacity

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        attempts = 0
        while free_capacity(ring.ctrl) < n:
            attempts += 1
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._back_off_producer(ring, n, attempts)
        return True

    def _back_off_producer(self, ring, n: int, attempts: int) -> None:
        pass

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.PARAMS)
        return f"{type(self).__name__}({params})"


class BusySpin(WaitStrategy):
    name = "busy-spin"


class SpinYield(WaitStrategy):
    name = "spin-yield"
    PARAMS = ("spins",)

    def __init__(self, spins: int = 100) -> None:
        super().__init__()
        self.spins = int(spins)

    def _back_off(self) -> None:
        if self.idle_cycles > self.spins:
            os.sched_yield()

    def _back_off_producer(self, ring, n: int, attempts: int) -> None:
        if attempts > self.spins:
            os.sched_yield()


class SpinPark(WaitStrategy):
    name = "spin-park"
    PARAMS = ("spins", "spin_us", "yields", "park_timeout_ms")

    def __init__(self, spins: int = 100, yields: int = 20, park_timeout_ms: float = DEFAULT_PARK_TIMEOUT_S * 1e3,
                 spin_us: float = DEFAULT_SPIN_US) -> None:
        super().__init__()
        self.spins = int(spins)
        # spinning lasts at least spin_us as well as spins cycles: a count alone spun 10x shorter
        # once idle cycles got 10x cheaper, and every park costs a futex wake-up (tens of us here)
        self.spin_us = float(spin_us)
        self._spin_ns = int(self.spin_us * 1e3)
        self._idle_since_ns = 0
        self.yields = int(yields)
        self.park_timeout_ms = float(park_timeout_ms)
        self.parker: Parker | None = None

    def bind(self, inputs: Iterable = (), outputs: Iterable = ()) -> "SpinPark":
        self.parker = Parker(inputs, self.park_timeout_ms / 1e3, outputs=outputs)
        return self

    def _back_off(self) -> None:
        cycles = self.idle_cycles
        if cycles == 1:
            self._idle_since_ns = time.monotonic_ns()
        if cycles <= self.spins:
            return
        if self._spin_ns and time.monotonic_ns() - self._idle_since_ns < self._spin_ns:
            self.idle_cycles = self.spins + 1  # still spinning: yields and the park come after
            return
        if cycles <= self.spins + self.yields or self.parker is None:
            os.sched_yield()
            return
        self.parker.park()

    def _back_off_producer(self, ring, n: int, attempts: int) -> None:
        if attempts <= self.spins:
            return
        if attempts <= self.spins + self.yields:
            os.sched_yield()
            return
        wait_for_space(ring.ctrl, n, self.park_timeout_ms / 1e3)

    @property
    def parks(self) -> int:
        return self.parker.parks if self.parker else 0


STRATEGIES: dict[str, type[WaitStrategy]] = {cls.name: cls for cls in (BusySpin, SpinYield, SpinPark)}
DEFAULT_STRATEGY = "spin-park"
