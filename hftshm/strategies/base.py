"""The strategy interface: what a strategy author writes.

A strategy is a class with a few callbacks. The runtime (``hftshm.strategies.runtime``) calls them
with batches of records, in market-time order, and collects the order intents the strategy queued
through its helpers::

    from hftshm.strategies import Param, Strategy

    class Crossing(Strategy):
        PARAMS = {"qty": Param(0.01, "order size, BTC", positive=True)}

        def on_book(self, book):
            if self.position == 0 and book["imbalance"] > 0.8:
                self.buy(self.round_bid(book["mid"]), self.params["qty"])

Callbacks (all optional except none; each may queue intents):

* ``initialize(params)``: once, before any data, with the validated parameters (``PARAMS``
  defaults filled in). Raise ``ValueError`` for a bad combination; the runtime reports it with the
  strategy's name and the strategy does not start.
* ``on_tick(events)``: a batch (numpy structured array, ``market_event`` layout) of this symbol's
  market events: depth changes, trades, BBO. Batched so a Python strategy pays the call once per
  batch, not per record; vectorise over it (``events[events["kind"] == EventKind.TRADE]``).
* ``on_book(snapshot)``: the latest ``book_snapshot`` record of the symbol after the batch
  (conflated: a slow strategy sees the newest book, not a backlog of stale ones).
* ``on_execution_report(report)``: one ``execution_report`` record for one of this strategy's
  orders: ack, reject (risk, OMS or exchange), partial fill, fill, cancel, replace. The portfolio
  (``self.portfolio``: position, open orders, PnL) is already updated when it is called.
* ``on_timer(now_ns)``: every ``TIMER_INTERVAL_NS`` of *market* time (0: never).
* ``on_restart()``: the platform restarted the strategy worker mid-run and rebuilt the portfolio
  from the OMS's record; rebuild the strategy's own bookkeeping from it (see ``VwapExecution``).

Time is market time (``self.now_ns``, the exchange timestamp of the last event seen), never the
wall clock, so a backtest replays identically.

Intents: ``buy``/``sell`` (limit, any time in force), ``buy_market``/``sell_market``, ``cancel``,
``cancel_all``, ``replace``. They append into a preallocated ``order_intent`` buffer; the runtime
publishes it after the callback returns. Prices must be on the symbol's tick grid: use
``round_bid``/``round_ask`` (down/up to a tick) and ``round_qty`` (down to a lot).

A strategy that raises is paused (the others keep running); the error is reported with its name.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hftshm.codes import OrderType, Side, TimeInForce
from hftshm.strategies import grid_nb
from hftshm.strategies import intents_nb
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.portfolio import OpenOrder, Portfolio
from hftshm.symbols import Market, Symbol
from hftshm.transport.layout import load as load_layout


class StrategyError(RuntimeError):
    """A strategy misbehaved (bad parameters, raised, overflowed a buffer); the message names it."""

    def __init__(self, strategy: str, message: str):
        super().__init__(f"strategy {strategy!r}: {message}")
        self.strategy = strategy


@dataclass(frozen=True)
class Param:
    """A declared strategy parameter: default (its type decides the accepted type), doc, bounds."""

    default: Any
    doc: str = ""
    min: float | None = None
    max: float | None = None
    positive: bool = False
    choices: tuple[str, ...] | None = None
    #: a quantity parameter's default on an inverse (COIN-M) market, where quantities are contracts
    #: of a fixed USD size rather than the coin (None: not a quantity, or the same default everywhere)
    contracts: Any = None

    @property
    def is_quantity(self) -> bool:
        """A size in the symbol's quantity unit (coin or contracts): it does not carry across markets."""
        return self.contracts is not None

    def default_for(self, market: str | None) -> Any:
        """The default on ``market`` (``hftshm.symbols.MARKETS``); None while the market is unknown and the
        default depends on it."""
        if self.contracts is None:
            return self.default
        if market is None:
            return None
        return self.contracts if market == "inverse" else self.default

    def parse(self, value: Any) -> Any:
        """Coerce ``value`` (possibly a command-line string) to the default's type and check bounds."""
        kind = type(self.default)
        if isinstance(value, str) and kind is not str:
            value = _parse_text(value, kind)
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"must be true or false, found {value!r}")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise ValueError(f"must be an integer, found {value!r}")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"must be a number, found {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"must be finite, found {value!r}")
        elif kind is str:
            if not isinstance(value, str):
                raise ValueError(f"must be a string, found {value!r}")
            if self.choices is not None and value.lower() not in self.choices:
                raise ValueError(f"is {value!r}; allowed: {', '.join(self.choices)}")
            value = value.lower() if self.choices is not None else value
        if kind in (int, float):
            if self.positive and value <= 0:
                raise ValueError(f"must be > 0, found {value!r}")
            if self.min is not None and value < self.min:
                raise ValueError(f"must be >= {self.min}, found {value!r}")
            if self.max is not None and value > self.max:
                raise ValueError(f"must be <= {self.max}, found {value!r}")
        return value


def _parse_text(text: str, kind: type) -> Any:
    raw = text.strip()
    if kind is bool:
        if raw.lower() in ("true", "1", "yes", "on"):
            return True
        if raw.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"must be true or false, found {text!r}")
    try:
        return int(raw) if kind is int else float(raw)
    except ValueError:
        raise ValueError(f"must be {'an integer' if kind is int else 'a number'}, found {text!r}") from None


def resolve_params(strategy: str, declared: dict[str, Param], given: dict[str, Any],
                   market: str | None = "linear") -> dict[str, Any]:
    """``given`` checked against ``declared``, defaults filled in for the symbol's ``market`` (a
    quantity parameter's default differs on an inverse market: ``Param.contracts``); a StrategyError
    names the bad key. ``market`` None (not known yet) leaves such defaults out, for a later call
    that knows it.

    A strategy that declares no PARAMS takes whatever it is given, unchecked.
    """
    if not declared:
        return dict(given)
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise StrategyError(strategy, f"unknown parameter(s) {', '.join(unknown)}; "
                                      f"known: {', '.join(sorted(declared))}")
    resolved = {}
    for key, param in declared.items():
        try:
            if key in given:
                resolved[key] = param.parse(given[key])
            elif param.default_for(market) is not None or not param.is_quantity:
                resolved[key] = param.default_for(market)
        except ValueError as exc:
            raise StrategyError(strategy, f"parameter {key} {exc}") from None
    return resolved


class Strategy:
    """Base class of every strategy; see the module docstring for the contract."""

    #: declared parameters: name -> Param (validated before ``initialize``)
    PARAMS: ClassVar[dict[str, Param]] = {}
    #: call ``on_timer`` every this many ns of market time (0: never)
    TIMER_INTERVAL_NS: ClassVar[int] = 0
    #: a one-line description for ``hftshm strategies list`` (default: the class docstring's first line)
    DESCRIPTION: ClassVar[str] = ""

    # -- set by the runtime (``bind``) before ``initialize`` -----------------------------------
    name: str = ""
    strategy_id: int = 0
    symbol: Symbol
    portfolio: Portfolio
    params: dict[str, Any]
    #: exchange time of the last event this strategy saw (market time, ns since epoch)
    now_ns: int = 0
    #: monotonic publish time of the market event that triggered the current callback
    origin_ts_ns: int = 0
    best_bid: float = math.nan
    best_ask: float = math.nan
    mid: float = math.nan

    def bind(self, name: str, strategy_id: int, symbol: Symbol, intent_capacity: int = 256,
             order_capacity: int = 64, first_client_order_id: int = 1) -> None:
        """Give the strategy its identity and buffers (the runtime does this; tests may too)."""
        self.name = name
        self.strategy_id = int(strategy_id)
        self.symbol = symbol
        self.portfolio = Portfolio(order_capacity, first_client_order_id, Market.of(symbol.market),
                                   symbol.contract_size)
        self.intents = load_layout("order_intent").zeros(intent_capacity)
        self.intent_count = np.zeros(1, dtype=np.int64)
        self.params = {}
        self.log = logging.getLogger(f"hftshm.strategy.{name}")

    # -- callbacks ------------------------------------------------------------------------------
    def initialize(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_tick(self, events: np.ndarray) -> None:
        pass

    def on_book(self, snapshot) -> None:
        pass

    def on_execution_report(self, report) -> None:
        pass

    def on_timer(self, now_ns: int) -> None:
        pass

    def on_restart(self) -> None:
        """The worker restarted within a run and rebuilt ``self.portfolio`` (position, PnL, open
        orders) from the OMS's record, before any data: rebuild what else the strategy keeps from it.
        Default: nothing (the strategy's own state starts fresh)."""

    def summary(self) -> dict[str, Any]:
        """Strategy-specific results for reports (e.g. VWAP slippage). Default: nothing extra."""
        return {}

    # -- state ----------------------------------------------------------------------------------
    @property
    def position(self) -> float:
        return self.portfolio.position

    def open_orders(self, side: Side | None = None) -> list[OpenOrder]:
        return self.portfolio.open_orders(side)

    def signal(self, value: float = 1.0) -> None:
        """Count a decision (exported as the strategy's ``signals`` metric)."""
        self.portfolio.pf[pnb.PF_SIGNALS] += 1.0

    # -- grids ----------------------------------------------------------------------------------
    def round_bid(self, price: float) -> float:
        """Down to the tick grid (a bid never becomes more aggressive by rounding)."""
        return float(grid_nb.floor_to_tick(price, self.symbol.tick_size))

    def round_ask(self, price: float) -> float:
        """Up to the tick grid."""
        return float(grid_nb.ceil_to_tick(price, self.symbol.tick_size))

    def round_qty(self, qty: float) -> float:
        """Down to the lot grid."""
        return float(grid_nb.floor_to_lot(qty, self.symbol.lot_size))

    # -- intents --------------------------------------------------------------------------------
    def buy(self, price: float, qty: float, tif: TimeInForce = TimeInForce.GTC) -> int:
        """Queue a limit buy; returns its client order id."""
        return self._new(Side.BUY, OrderType.LIMIT, tif, price, qty)

    def sell(self, price: float, qty: float, tif: TimeInForce = TimeInForce.GTC) -> int:
        """Queue a limit sell; returns its client order id."""
        return self._new(Side.SELL, OrderType.LIMIT, tif, price, qty)

    def buy_market(self, qty: float) -> int:
        return self._new(Side.BUY, OrderType.MARKET, TimeInForce.IOC, math.nan, qty)

    def sell_market(self, qty: float) -> int:
        return self._new(Side.SELL, OrderType.MARKET, TimeInForce.IOC, math.nan, qty)

    def cancel(self, client_order_id: int) -> int:
        """Queue a cancel; 0 if the order is already done or being cancelled."""
        return self._check(intents_nb.send_cancel(
            self.portfolio.pf, self.portfolio.orders, self.intents, self.intent_count, self.strategy_id,
            self.symbol.symbol_id, int(client_order_id), self.now_ns, self.origin_ts_ns))

    def cancel_all(self, side: Side | None = None) -> int:
        """Cancel every open order (of one side); returns how many cancels were queued."""
        return sum(1 for order in self.open_orders(side)
                   if not order.pending_cancel and self.cancel(order.client_order_id) > 0)

    def replace(self, client_order_id: int, price: float, qty: float) -> int:
        """Queue a price/quantity change; 0 if the order is done or already being amended."""
        return self._check(intents_nb.send_replace(
            self.portfolio.pf, self.portfolio.orders, self.intents, self.intent_count, self.strategy_id,
            self.symbol.symbol_id, int(client_order_id), float(price), float(qty), self.now_ns,
            self.origin_ts_ns))

    def _new(self, side: Side, order_type: OrderType, tif: TimeInForce, price: float, qty: float) -> int:
        return self._check(intents_nb.send_new(
            self.portfolio.pf, self.portfolio.orders, self.intents, self.intent_count, self.strategy_id,
            self.symbol.symbol_id, int(side), int(order_type), int(tif), float(price), float(qty), self.now_ns,
            self.origin_ts_ns))

    def _check(self, code: int) -> int:
        if code < 0:
            raise StrategyError(self.name, intents_nb.ERROR_TEXT.get(code, f"intent error {code}"))
        return int(code)

    def take_intents(self) -> np.ndarray:
        """The intents queued since the last call (a view; copy before the next callback)."""
        n = int(self.intent_count[0])
        self.intent_count[0] = 0
        return self.intents[:n]

    def discard_intents(self) -> int:
        """Drop queued intents (after a callback raised): forget their open-order slots too, since
        they will never be sent."""
        n = int(self.intent_count[0])
        for intent in self.intents[:n]:
            pnb.forget_intent(self.portfolio.pf, self.portfolio.orders, int(intent["client_order_id"]))
        self.intent_count[0] = 0
        return n
