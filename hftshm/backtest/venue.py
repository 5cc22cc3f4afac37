"""``PlatformVenue``: the platform's risk, OMS and exchange stages in this process (kernels in venue_nb).

Built from the same ``[risk]``, ``[oms]`` and ``[exchange]`` sections the platform runs with, so a
backtest is limited, throttled, sequenced and filled as the running platform would be: the
exchange part is ``hftshm.exchange.simulator.ExchangeSimulator``'s replay fill model (queue
position against the recorded book, trades through, book crosses) with its seeded latency model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hftshm.backtest import venue_nb
from hftshm.config import Section
from hftshm.exchange.config import ExchangeConfig
from hftshm.exchange.simulator import ExchangeSimulator
from hftshm.oms import oms_nb
from hftshm.oms.config import OmsConfig
from hftshm.oms.engine import OmsEngine, ack_timeouts_ns
from hftshm.risk.config import RiskConfig
from hftshm.risk.engine import RiskEngine
from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load

ORDER = load("order")
REPORT = load("execution_report")
SNAPSHOT = load("book_snapshot")
QUEUE_CAPACITY = 1 << 16


def describe_latency(config) -> dict:
    if config.model == "constant":
        return {"model": "constant", "us": config.constant_us}
    if config.model == "uniform":
        return {"model": "uniform", "min_us": config.min_us, "max_us": config.max_us}
    return {"model": "series", "path": config.series_path}


def _queue_reports():
    return (REPORT.zeros(QUEUE_CAPACITY), np.zeros(QUEUE_CAPACITY, np.int64), np.zeros(QUEUE_CAPACITY, np.int8),
            np.zeros(4, np.int64))


class PlatformVenue:
    """Risk -> OMS -> exchange -> OMS -> strategy, with the configured latencies, in one process."""

    def __init__(self, raw: dict, symbols: SymbolTable, seed: int = 1, max_intents: int = 4096,
                 base_dir: Path | None = None):
        self.risk_config = RiskConfig.from_section(Section("risk", raw.get("risk") or {}), symbols)
        self.oms_config = OmsConfig.from_section(Section("oms", raw.get("oms") or {}))
        self.exchange_config = ExchangeConfig.from_raw(raw.get("exchange"))
        self.risk = RiskEngine(self.risk_config, symbols)
        c = self.oms_config
        self.oms = OmsEngine(max_orders=c.max_orders, epoch=1,
                             timeouts_ns=ack_timeouts_ns(c.ack_timeout_ms, c.max_retries, c.backoff_factor,
                                                         c.max_backoff_ms))
        x = self.exchange_config
        # the exchange's own simulator state (replay fill model, seeded latencies); its pending queue
        # is sized so a backtest never outgrows it (the compiled loop cannot grow arrays)
        self.exchange = ExchangeSimulator(x, symbols, seed, base_dir=base_dir, pending_capacity=QUEUE_CAPACITY)
        sim = self.exchange
        room = sim._room_per_order  # reports one arriving order may need (ack, a fill per level, cancel)
        s = self.risk.state
        risk = (s.symbols, s.strategies, s.account, s.table, self.risk.control.words,
                np.zeros(max_intents, np.uint16), np.zeros(max_intents, np.int64), ORDER.zeros(max_intents),
                REPORT.zeros(max_intents), SNAPSHOT.zeros(1))
        self.max_intents = max_intents
        exchange_out = REPORT.zeros(2 * (room + x.max_open_orders) + 16)
        self.V = (risk, (self.oms.book, self.oms.ctl, self.oms.out),
                  (sim._S, sim._pend, sim._pend_arrival, np.array([room], np.int64)),
                  _queue_reports(), _queue_reports(), (exchange_out, REPORT.zeros(1)),
                  np.zeros(venue_nb.ST_WORDS, np.int64))
        self.latency_model = {"entry": describe_latency(x.entry_latency),
                              "response": describe_latency(x.response_latency), "seed": seed}
        self.fill_model = x.fill_model
        self._out = REPORT.zeros(4096)
        self._empty = REPORT.zeros(0)
        self._lq_ptr, self._sq_ptr, self._sq_times = self.V[4][3], self.V[3][3], self.V[3][1]
        self._oms_words = self.oms.words
        self._marked_mid = float("nan")
        # arrive_flat's arrays, unpacked once: a kernel taking V from Python unboxes every array of it
        # per call, and a V-taking wrapper costs a cold start its own compilation (~1 CPU-s)
        self._arrive_args = (sim._S, sim._pend, sim._pend_arrival, np.int64(room), exchange_out, *self.V[3],
                             self.V[6])

    # -- the backtest loop's side ------------------------------------------------------------------
    def on_intents(self, intents: np.ndarray) -> None:
        now = int(intents["market_ts_ns"].max())
        for start in range(0, len(intents), self.max_intents):
            chunk = intents[start:start + self.max_intents]
            venue_nb.send(self.V, chunk, len(chunk), np.int64(now))

    def on_market(self, events: np.ndarray) -> None:
        venue_nb.market(self.V, events, 0, len(events))

    def on_books(self, snapshots: np.ndarray) -> None:
        last = snapshots[-1]
        mid = float(last["mid"])
        if last["valid"] and mid == mid and mid != self._marked_mid:
            self._marked_mid = mid  # an unchanged mid leaves risk's marks as they are
            venue_nb.mark(self.V, int(last["symbol_id"]), mid, int(last["exch_ts_ns"]))

    def advance(self, now_ns: int) -> None:
        venue_nb.arrive_flat(np.int64(now_ns), *self._arrive_args)

    def _needs_delivery(self, now_ns: int) -> bool:
        # read the queue words directly: a kernel call taking V costs more in argument typing than this
        lq_ptr, sq_ptr, sq_times = self._lq_ptr, self._sq_ptr, self._sq_times
        if lq_ptr[0] < lq_ptr[1]:
            return True
        if sq_ptr[0] < sq_ptr[1] and sq_times[sq_ptr[0] & (len(sq_times) - 1)] <= now_ns:
            return True
        return now_ns >= self._oms_words[oms_nb.O_NEXT_DEADLINE]

    def take_reports(self, now_ns: int) -> np.ndarray:
        if not self._needs_delivery(now_ns):
            return self._empty
        parts = []
        while True:
            n = venue_nb.deliver(self.V, np.int64(now_ns), self._out, 0)
            if n:
                parts.append(self._out[:n].copy())
            if n < len(self._out):
                break
        return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else REPORT.zeros(0))

    def pending(self) -> int:
        return int(venue_nb.pending(self.V))

    @property
    def stats(self) -> dict[str, int]:
        names = ("orders_to_exchange", "exchange_reports", "delivered", "queue_full", "risk_rejects", "oms_rejects")
        return {name: int(self.V[6][k]) for k, name in enumerate(names)} | {
            f"exchange_{k}": v for k, v in self.exchange.stats.items()}
