"""Risk state: the arrays the kernels work on, built from ``[risk]`` and ``[symbols]``, and their
snapshot/restore as plain data (what the Redis mirror stores).

Everything here runs off the hot path: at start, when the trading day rolls, and when the worker
takes a snapshot in idle time.
"""

from __future__ import annotations

import math
import time

import numpy as np

from hftshm.codes import Reason, Side, TradingState
from hftshm.risk import orders_nb
from hftshm.risk.config import RiskConfig
from hftshm.risk.replay_nb import REPLAYED_DTYPE
from hftshm.risk.state_nb import (ACCOUNT_DTYPE, BUCKET_DTYPE, STRATEGY_SLOTS, SYMBOL_DTYPE, refresh_symbol_pnl_all,
                                  refresh_totals_and_loss)
from hftshm.symbols import Market, SymbolTable
from hftshm.units import ACCOUNT_UNIT, base_and_quote, units_of

SNAPSHOT_VERSION = 1
DAY_NS = 86_400 * 1_000_000_000
_SYMBOL_STATE_FIELDS = ("position", "avg_cost", "realized", "fees", "mid", "fills", "volume")
_ORDER_FIELDS = ("strategy_id", "client_order_id", "order_id", "symbol_id", "side", "leaves", "confirmed_leaves",
                 "price", "acked", "cancel_sent")


def limit_units(symbol) -> dict:
    """The unit of each per-symbol limit: sizes in the symbol's quantity unit (contracts on an
    inverse market), price bands in the quote currency."""
    units = units_of(symbol)
    quote = base_and_quote(symbol.name)[1] or "quote"
    return {"max_order_size": units.qty_label, "max_position_per_symbol": units.qty_label,
            "price_band_min": quote, "price_band_max": quote, "price_band_bps": "bps"}


class RiskState:
    """The numpy arrays of the check and accounting kernels, and Python views of them."""

    def __init__(self, config: RiskConfig, symbols: SymbolTable):
        config.check_symbols(symbols)
        self.config = config
        self.symbol_table = symbols
        self.symbols = np.zeros(symbols.max_id() + 1, dtype=SYMBOL_DTYPE)
        self.symbols["mid"] = math.nan
        for symbol in symbols:
            limits = config.limits_for(symbol.name)
            row = self.symbols[symbol.symbol_id]
            row["known"] = 1
            row["market"] = int(Market.of(symbol.market))
            row["contract_size"] = symbol.contract_size
            row["max_order_size"] = limits.max_order_size
            row["max_position"] = limits.max_position_per_symbol
            row["band_min_px"] = limits.price_band_min
            row["band_max_px"] = limits.price_band_max
            row["band_bps"] = limits.price_band_bps
            row["qty_eps"] = symbol.lot_size * 1e-6
        self.strategies = np.zeros(STRATEGY_SLOTS, dtype=BUCKET_DTYPE)
        self.strategies["tokens"] = config.max_orders_burst_per_strategy
        self.account = np.zeros(1, dtype=ACCOUNT_DTYPE)
        acct = self.account[0]
        acct["global_tokens"] = config.max_orders_burst
        acct["global_rate_per_ns"] = config.max_orders_per_second / 1e9
        acct["global_burst"] = config.max_orders_burst
        acct["strategy_rate_per_ns"] = config.max_orders_per_second_per_strategy / 1e9
        acct["strategy_burst"] = config.max_orders_burst_per_strategy
        acct["use_market_clock"] = 1 if config.throttle_clock == "market" else 0
        acct["max_daily_loss"] = config.max_daily_loss
        acct["loss_halt_armed"] = 1
        self.table = orders_nb.new_table(config.max_open_orders)
        # fills a restart rebuilt from the OMS's record, so the report ring's redelivery of them is
        # recognised (``replay_nb``); empty unless this worker restarted
        self.replayed = np.zeros(0, dtype=REPLAYED_DTYPE)
        self.day: int | None = None  # trading day (clock // DAY_NS) the daily PnL counts from

    # -- reads -----------------------------------------------------------------------------------

    def position(self, symbol: str) -> float:
        return float(self.symbols[self.symbol_table.by_name(symbol).symbol_id]["position"])

    def pending(self, symbol: str) -> tuple[float, float]:
        """(open buy, open sell) quantity risk reserves for ``symbol``."""
        row = self.symbols[self.symbol_table.by_name(symbol).symbol_id]
        return float(row["pending_buy"]), float(row["pending_sell"])

    def account_rates(self) -> np.ndarray:
        """Per symbol row: account units (quote) per unit of its PnL (``state_nb.account_rate``)."""
        rows = self.symbols
        inverse = rows["market"] == int(Market.INVERSE)
        price = np.where(rows["mid"] > 0.0, rows["mid"], np.where(rows["last_price"] > 0.0, rows["last_price"], 0.0))
        return np.where(inverse, price, 1.0)

    def summary(self) -> dict:
        """The account: every symbol's PnL parts in the account's unit (quote currency; an inverse
        symbol's coin converted at its mid)."""
        known = self.symbols["known"] == 1
        rates = self.account_rates()
        realized = float((self.symbols["realized"] * rates)[known].sum())
        fees = float((self.symbols["fees"] * rates)[known].sum())
        acct = self.account[0]
        total = float(acct["total_pnl"])
        return {
            "daily_pnl": total - float(acct["day_start_pnl"]),
            "total_pnl": total,
            "realized_pnl": realized,
            "unrealized_pnl": total - realized + fees,
            "fees": fees,
            "open_orders": int(acct["open_orders"]),
            "unit": ACCOUNT_UNIT,
        }

    def positions(self) -> list[dict]:
        out = []
        for symbol in self.symbol_table:
            row = self.symbols[symbol.symbol_id]
            out.append({"symbol": symbol.name, "position": float(row["position"]), "avg_cost": float(row["avg_cost"]),
                        "mid": float(row["mid"]), "realized": float(row["realized"]), "fees": float(row["fees"]),
                        "pnl": float(row["pnl"]), "open_buy": float(row["pending_buy"]),
                        "open_sell": float(row["pending_sell"]), "market": symbol.market,
                        "units": units_of(symbol).as_dict()})
        return out

    def limits(self) -> dict:
        cfg = self.config
        return {
            "max_daily_loss": cfg.max_daily_loss,
            "max_daily_loss_unit": ACCOUNT_UNIT,
            "max_orders_per_second": cfg.max_orders_per_second,
            "max_orders_per_second_per_strategy": cfg.max_orders_per_second_per_strategy,
            "symbols": {s.name: {**vars(cfg.limits_for(s.name)), "units": limit_units(s)} for s in self.symbol_table},
        }

    def open_orders(self) -> list[dict]:
        used = self.table[self.table["used"] == 1]
        return [{name: used[name][i].item() for name in _ORDER_FIELDS} for i in range(len(used))]

    # -- writes (off the hot path) ---------------------------------------------------------------

    def publish_summary(self, control) -> None:
        """Copy the PnL summary into the control block for the CLI and the web UI."""
        summary = self.summary()
        record = control.array[0]
        for key in ("daily_pnl", "realized_pnl", "unrealized_pnl", "fees", "open_orders"):
            record[key] = summary[key]
        record["summary_unix_ns"] = time.time_ns()

    def roll_day(self, clock_ns: int, control) -> bool:
        """Start a new trading day when ``clock_ns`` crosses UTC midnight; True if it did."""
        day = int(clock_ns) // DAY_NS
        if self.day is None:
            self.day = day
            return False
        if day <= self.day:
            return False
        self.day = day
        self.start_new_day(control)
        return True

    def start_new_day(self, control) -> None:
        """Daily PnL counts from now; the loss limit re-arms (a halt it caused stays until an operator acts)."""
        acct = self.account[0]
        acct["day_start_pnl"] = acct["total_pnl"]
        acct["loss_halt_armed"] = 1

    # -- snapshot / restore ------------------------------------------------------------------------

    def snapshot(self, control=None) -> dict:
        """Plain, JSON-able copy of what must survive a restart (positions by symbol name, not id)."""
        acct = self.account[0]
        symbols = {}
        for symbol in self.symbol_table:
            row = self.symbols[symbol.symbol_id]
            symbols[symbol.name] = {name: row[name].item() for name in _SYMBOL_STATE_FIELDS}
            if math.isnan(symbols[symbol.name]["mid"]):
                symbols[symbol.name]["mid"] = None
        used = self.table[self.table["used"] == 1]
        snap = {
            "version": SNAPSHOT_VERSION,
            "day": self.day,
            "day_start_pnl": float(acct["day_start_pnl"]),
            "symbols": symbols,
            "open_orders": [[used[name][i].item() for name in _ORDER_FIELDS] for i in range(len(used))],
        }
        if control is not None:
            record = control.array[0]
            snap["kill_switch"] = int(record["kill_switch"])
            snap["trading_state"] = TradingState(int(record["trading_state"])).name.lower()
            snap["halt_reason"] = int(record["halt_reason"])
            snap["control_created_unix_ns"] = control.created_unix_ns
        return snap

    def restore(self, snap: dict, control, restore_open_orders: bool) -> list[str]:
        """Load a snapshot into these arrays; returns notes for the log (what was and was not restored).

        Open orders are restored only when ``restore_open_orders`` (the same run: the OMS still has
        them); after a full platform restart they no longer exist and would be phantom exposure.
        """
        notes = []
        if snap.get("version") != SNAPSHOT_VERSION:
            return [f"snapshot version {snap.get('version')!r} is not {SNAPSHOT_VERSION}; not restored"]
        for name, values in snap.get("symbols", {}).items():
            if name not in self.symbol_table:
                notes.append(f"snapshot symbol {name} is no longer configured; its position is dropped")
                continue
            row = self.symbols[self.symbol_table.by_name(name).symbol_id]
            for field in _SYMBOL_STATE_FIELDS:
                value = values.get(field)
                row[field] = math.nan if value is None else value
        acct = self.account[0]
        acct["day_start_pnl"] = float(snap.get("day_start_pnl", 0.0))
        self.day = snap.get("day")
        refresh_symbol_pnl_all(self.symbols)
        if restore_open_orders:
            restored = 0
            for values in snap.get("open_orders", []):
                order = dict(zip(_ORDER_FIELDS, values))
                sid = int(order["symbol_id"])
                if sid >= len(self.symbols) or self.symbols[sid]["known"] != 1:
                    continue
                slot = orders_nb.insert(self.table, order["strategy_id"], order["client_order_id"],
                                        int(acct["open_orders"]))
                if slot < 0:
                    continue
                for field in _ORDER_FIELDS:
                    self.table[slot][field] = order[field]
                acct["open_orders"] += 1
                side_field = "pending_buy" if order["side"] == Side.BUY else "pending_sell"
                self.symbols[sid][side_field] += order["leaves"]
                restored += 1
            notes.append(f"restored {restored} open order(s)")
        elif snap.get("open_orders"):
            notes.append(f"{len(snap['open_orders'])} open order(s) in the snapshot belong to an earlier run; "
                         "not restored")
        if control is not None:
            # the kill switch is the operator's: the control layer loads it at start from what the
            # operator last set (run directory, Redis key), so a switch turned off while the platform
            # was down stays off; a risk snapshot taken before that must not turn it back on
            if snap.get("kill_switch") and not control.kill_switch:
                notes.append("kill switch was on in the snapshot; left to the operator controls (off now)")
            if control.epoch == 0 and snap.get("trading_state") in ("reducing", "halted"):
                control.set_trading_state(TradingState[snap["trading_state"].upper()],
                                          Reason(snap.get("halt_reason") or Reason.TRADING_HALTED))
                notes.append(f"trading state restored: {snap['trading_state']}")
            refresh_totals_and_loss(self.symbols, self.account, control.words)
        return notes
