"""Record builders for risk tests, examples and benchmarks (no test framework needed)."""

from __future__ import annotations

import numpy as np

from hftshm.codes import Action, OrderType, ReportEvent, Side, TimeInForce
from hftshm.config import Section
from hftshm.risk.config import RiskConfig
from hftshm.risk.engine import INTENT, REPORT, SNAPSHOT, RiskEngine
from hftshm.symbols import Symbol, SymbolTable

BTC = 1
ETH = 2
SYMBOLS = SymbolTable([Symbol("BTCUSDT", BTC, 0.1, 0.001), Symbol("ETHUSDT", ETH, 0.01, 0.001)])


def risk_config(**overrides) -> RiskConfig:
    """``[risk]`` with the shipped defaults and ``overrides`` (key = value as in the TOML)."""
    return RiskConfig.from_section(Section("risk", dict(overrides)), SYMBOLS)


def engine(mid: float | None = 61_000.0, control=None, **overrides) -> RiskEngine:
    """An engine over BTCUSDT/ETHUSDT, BTCUSDT marked at ``mid`` (None: no mark yet)."""
    eng = RiskEngine(risk_config(**overrides), SYMBOLS, control)
    if mid is not None:
        eng.on_marks(snapshots((BTC, mid)))
    return eng


def intents(*rows: dict) -> np.ndarray:
    """order_intent records from dicts; defaults: NEW LIMIT GTC BUY 0.1 BTCUSDT @ 61,000, strategy 1,
    client ids 1, 2, 3, ... in order."""
    out = INTENT.zeros(len(rows))
    for i, row in enumerate(rows):
        rec = out[i]
        rec["symbol_id"] = BTC
        rec["action"] = Action.NEW
        rec["side"] = Side.BUY
        rec["order_type"] = OrderType.LIMIT
        rec["tif"] = TimeInForce.GTC
        rec["price"] = 61_000.0
        rec["qty"] = 0.1
        rec["strategy_id"] = 1
        rec["client_order_id"] = i + 1
        for key, value in row.items():
            rec[key] = value
    return out


def reports(*rows: dict) -> np.ndarray:
    """execution_report records from dicts (defaults: FILL, BUY, BTCUSDT, strategy 1)."""
    out = REPORT.zeros(len(rows))
    for i, row in enumerate(rows):
        rec = out[i]
        rec["symbol_id"] = BTC
        rec["event"] = ReportEvent.FILL
        rec["side"] = Side.BUY
        rec["strategy_id"] = 1
        for key, value in row.items():
            rec[key] = value
    return out


def fill(client_order_id: int, side: int, qty: float, price: float, *, leaves: float = 0.0, fee: float = 0.0,
         symbol_id: int = BTC, strategy_id: int = 1) -> dict:
    event = ReportEvent.PARTIAL if leaves > 0 else ReportEvent.FILL
    return {"client_order_id": client_order_id, "side": side, "qty": qty, "price": price, "leaves_qty": leaves,
            "fee": fee, "symbol_id": symbol_id, "strategy_id": strategy_id, "event": event}


def snapshots(*marks: tuple[int, float], valid: int = 1) -> np.ndarray:
    """book_snapshot records carrying only (symbol_id, mid)."""
    out = SNAPSHOT.zeros(len(marks))
    for i, (symbol_id, mid) in enumerate(marks):
        out[i]["symbol_id"] = symbol_id
        out[i]["mid"] = mid
        out[i]["valid"] = valid
    return out
