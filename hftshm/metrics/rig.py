"""A run-shaped set of REAL shared-memory objects with synthetic activity, and no workers.

``MonitoringRig`` creates what a supervisor creates (status table, rings, metrics segment, risk
control block, strategy status rows), and ``step()`` moves them the way a replay would: records
through the rings, counters and heartbeats, latency samples, a random-walk PnL, orders and fills.
Tests of the collector, the web app, Prometheus and the dashboard run against it, and
``hftshm web --demo`` shows the dashboard with it when you want to look without replaying data.
Everything it creates is unlinked by ``close()``.
"""

from __future__ import annotations

import math
import os
import time
import uuid

import numpy as np

from hftshm.codes import Reason, StrategyState, WorkerState
from hftshm.metrics.histogram import record_many
from hftshm.metrics.live import RingBinding, SharedMemoryView, WorkerBinding
from hftshm.metrics.segment import MetricsSegment

# names as the platform's workers declare them (COUNTER_NAMES / HISTOGRAMS), a representative subset
WORKERS = {
    "feed": ("events_published", "events_total", "gaps"),
    "strategies": ("events", "intents", "reports"),
    "risk": ("checks", "approved", "reject_max_position", "reject_throttle"),
    "oms": ("orders_created", "reports_in", "lag_ms_gauge", "backlog_events_gauge"),
    "exchange": ("orders", "fills", "reject_post_only_would_cross"),
}
HISTOGRAMS = {
    "feed.exch_to_recv": 40_000.0,  # median ns of the synthetic latency
    "strategies.tick_to_intent": 2_500.0,
    "risk.hop": 180.0,
    "oms.hop": 900.0,
    "exchange.hop": 1_400.0,
    "oms.tick_to_order": 6_000.0,
}
RINGS = (
    ("md.strategies", "market_event", "feed", "strategies", 4096),
    ("intents", "order_intent", "strategies", "risk", 1024),
    ("orders", "order", "risk", "oms", 1024),
    ("exchange.orders", "order", "oms", "exchange", 1024),
    ("exchange.reports", "execution_report", "exchange", "oms", 1024),
)
STRATEGIES = (("mm-btc", 1), ("momo-btc", 1))


class MonitoringRig:
    def __init__(self, seed: int = 7, prefix: str | None = None):
        from hftshm.risk.control import ControlBlock
        from hftshm.runtime import segments
        from hftshm.runtime.status import StatusTable
        from hftshm.transport import layout as layouts
        from hftshm.transport.ring import Ring

        # hftshm_<pid>_<hex>_: the pid tells a stale-segment sweep (and test fixtures) whose segments these are
        self.prefix = prefix or f"hftshm_{os.getpid()}_{uuid.uuid4().hex[:8]}_rig_"
        self.rng = np.random.default_rng(seed)
        self._segments = segments
        self.status = StatusTable.create(self.prefix + "status", len(WORKERS))
        self.names = list(WORKERS)
        self.rings = {name: Ring.create(self.prefix + name, layout, capacity)
                      for name, layout, _, _, capacity in RINGS}
        self.metrics = MetricsSegment.create(self.prefix + "metrics", list(HISTOGRAMS))
        self.control = ControlBlock.create(self.prefix + "control")
        dtype = layouts.load("strategy_status").dtype
        self._strategy_shm = segments.create(self.prefix + "strategy_status.strategies", dtype.itemsize * 8)
        self.strategy_rows = np.ndarray((8,), dtype=dtype, buffer=self._strategy_shm.buf)
        self.strategy_rows[:] = np.zeros(8, dtype=dtype)
        for i, (name, symbol_id) in enumerate(STRATEGIES):
            row = self.strategy_rows[i]
            row["strategy_id"] = i + 1
            row["state"] = int(StrategyState.RUNNING)
            row["symbol_id"] = symbol_id
            row["avg_price"] = math.nan
            row["name"][: len(name)] = np.frombuffer(name.encode(), dtype=np.uint8)
        now = time.monotonic_ns()
        for row, name in enumerate(self.names):
            words = self.status.words[row]
            words[0] = 10_000 + row  # pid
            words[2] = now  # started
        self.mid = 61_000.0
        self.pnl_walk = 0.0
        self.step_count = 0
        self.order_seq = 0
        self.trading = None  # a MemoryTradingProvider, when given by attach_trading

    # -- the view --------------------------------------------------------------------------------

    def view(self) -> SharedMemoryView:
        from hftshm.runtime import status as st

        return SharedMemoryView(
            status_words=self.status.words,
            workers=[WorkerBinding(n, i, "pipeline", WORKERS[n]) for i, n in enumerate(self.names)],
            rings=[RingBinding(name, self.rings[name].ctrl, layout, producer, consumer)
                   for name, layout, producer, consumer, _ in RINGS],
            metrics=self.metrics,
            control=self.control,
            strategy_rows=self.strategy_rows,
            symbol_names={1: "BTCUSDT"},
            run_id=self.prefix,
            gauges=lambda: {"oms_writer_lag_ms": float(self.status.words[3, st.COUNTERS + 2])},
        )

    def manifest(self, run_dir, extra_rings: tuple = ()):
        """A run manifest naming the rig's segments (``extra_rings``: more ``RingEntry``), with this
        process as the supervisor: what ``hftshm run`` writes to ``<run_dir>/current.json``."""
        from hftshm.runtime.manifest import ProcessEntry, RingEntry, RunManifest, WorkerEntry

        return RunManifest(
            prefix=self.prefix, supervisor_pid=os.getpid(), run_dir=str(run_dir), config={},
            status_segment=self.status.name,
            workers=[WorkerEntry(n, i, "pipeline", f"rig:{n}", {}, list(WORKERS[n]),
                                 [h.split(".", 1)[1] for h in HISTOGRAMS if h.startswith(n + ".")])
                     for i, n in enumerate(self.names)],
            rings=[RingEntry(name, self.rings[name].name, layout, producer, consumer, capacity, "block")
                   for name, layout, producer, consumer, capacity in RINGS] + list(extra_rings),
            processes=[ProcessEntry("pipeline", list(self.names), -1, "spin-park", os.getpid())],
            metrics_segment=self.metrics.name, control_segment=self.control.name, started_ns=time.monotonic_ns(),
        )

    def attach_trading(self, trading) -> None:
        self.trading = trading

    # -- activity --------------------------------------------------------------------------------

    def step(self, events: int = 500) -> None:
        """One tick of synthetic activity (call it a few times a second for a live-looking run)."""
        from hftshm.runtime import status as st

        rng = self.rng
        self.step_count += 1
        words = self.status.words
        now = time.monotonic_ns()
        for row, name in enumerate(self.names):
            words[row, st.STATE] = int(WorkerState.RUNNING)
            words[row, st.HEARTBEAT_NS] = now
            words[row, st.WORK_COUNT] += events
            words[row, st.IDLE_COUNT] += int(rng.integers(0, 50))
        # rings: the producer writes a batch, the consumer keeps up with most of it
        for name, _, _, _, capacity in RINGS:
            ring = self.rings[name]
            batch = events if name.startswith("md") else max(1, events // 20)
            view = ring.claim(min(batch, capacity // 2))
            ring.commit(len(view))
            behind = int(rng.integers(0, max(2, len(view) // 3)))
            got = ring.poll(max(0, ring.occupancy() - behind))
            ring.release(len(got))
        orders = max(1, events // 25)
        fills = int(rng.integers(0, orders + 1))
        counters = {n: self.status.counters(i) for i, n in enumerate(self.names)}
        counters["feed"][0] += events
        counters["feed"][1] = 10_000_000
        counters["strategies"][0] += events
        counters["strategies"][1] += orders
        counters["strategies"][2] += orders + fills
        counters["risk"][0] += orders
        counters["risk"][1] += orders - 1
        counters["risk"][2] += int(rng.integers(0, 2))
        counters["oms"][0] += orders - 1
        counters["oms"][1] += orders + fills
        counters["oms"][2] = int(rng.integers(0, 40))
        counters["oms"][3] = int(rng.integers(0, 400))
        counters["exchange"][0] += orders - 1
        counters["exchange"][1] += fills
        # latencies: lognormal around each stage's median
        for name, median in HISTOGRAMS.items():
            samples = (rng.lognormal(math.log(median), 0.45, size=events)).astype(np.int64)
            record_many(self.metrics.histogram(name), samples)
        # market, positions, PnL
        self.mid += float(rng.normal(0, 6.0))
        self.pnl_walk += float(rng.normal(0.4, 6.0))
        control = self.control.array[0]
        control["checks"] += orders
        control["approved"] += orders - 1
        control["reject_counts"][int(Reason.MAX_POSITION)] += int(rng.integers(0, 2))
        control["reject_counts"][int(Reason.THROTTLE)] += int(rng.integers(0, 2) * rng.integers(0, 2))
        control["open_orders"] = int(rng.integers(0, 12))
        for i, (name, _) in enumerate(STRATEGIES):
            row = self.strategy_rows[i]
            share = 0.65 if i == 0 else 0.35
            row["signals"] += events // 10
            row["intents"] += orders // 2
            row["fills"] += fills // 2
            row["open_orders"] = int(rng.integers(0, 6))
            row["position"] = round(float(np.clip(row["position"] + rng.normal(0, 0.004), -0.05, 0.05)), 3)
            row["avg_price"] = self.mid - float(rng.normal(0, 4.0))
            row["mid"] = self.mid
            row["realized_pnl"] = self.pnl_walk * share
            row["unrealized_pnl"] = float(row["position"]) * (self.mid - float(row["avg_price"]))
            row["fees"] = 0.002 * self.step_count * share
        control["realized_pnl"] = float(self.strategy_rows["realized_pnl"][:2].sum())
        control["unrealized_pnl"] = float(self.strategy_rows["unrealized_pnl"][:2].sum())
        control["fees"] = float(self.strategy_rows["fees"][:2].sum())
        control["daily_pnl"] = float(control["realized_pnl"] + control["unrealized_pnl"] - control["fees"])
        if self.trading is not None:
            self._orders_and_trades(orders, fills)

    def _orders_and_trades(self, orders: int, fills: int) -> None:
        rng = self.rng
        now = time.time_ns()
        for _ in range(min(orders, 3)):
            self.order_seq += 1
            side = "buy" if rng.random() < 0.5 else "sell"
            price = round(self.mid + (-1 if side == "buy" else 1) * float(rng.integers(0, 5)) * 0.1, 1)
            qty = round(float(rng.integers(1, 20)) * 0.001, 3)
            state = str(rng.choice(["acknowledged", "filled", "partially_filled", "cancelled", "rejected"],
                                   p=[0.35, 0.35, 0.1, 0.15, 0.05]))
            strategy = STRATEGIES[int(rng.integers(0, len(STRATEGIES)))][0]
            self.trading.upsert_order({
                "client_order_id": f"{strategy}-{self.order_seq}", "strategy": strategy, "symbol": "BTCUSDT",
                "side": side, "type": "limit", "price": price, "qty": qty,
                "filled_qty": qty if state == "filled" else round(qty / 2, 3) if state == "partially_filled" else 0.0,
                "state": state, "reason": "max_position" if state == "rejected" else "", "updated_unix_ns": now})
            if state in ("filled", "partially_filled") and fills:
                self.trading.add_trade({
                    "trade_id": f"t{self.order_seq}", "client_order_id": f"{strategy}-{self.order_seq}",
                    "strategy": strategy, "symbol": "BTCUSDT", "side": side, "price": price,
                    "qty": qty if state == "filled" else round(qty / 2, 3), "fee": round(price * qty * 0.0002, 4),
                    "ts_unix_ns": now})

    # -- cleanup ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Unmap and unlink everything the rig created."""
        self.strategy_rows = None
        for ring in self.rings.values():
            ring.unlink()  # before close: the owner's unlink also tells the resource tracker
            ring.close()
        self.metrics.close()
        self.metrics.unlink()
        self.control.close()
        self.control.unlink()
        # the creator's Segment.unlink also tells the resource tracker the name is gone
        self.status.segment.unlink()
        self.status.close()
        self._strategy_shm.unlink()
        self._strategy_shm.close()

    def __enter__(self) -> "MonitoringRig":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
