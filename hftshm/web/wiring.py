"""The web app wired to a real platform: the supervisor's ``hftshm run`` and ``hftshm web`` use this.

    app = create_platform_app(platform_config, view)

* positions, risk state, strategies, latencies: the ``view`` (``SharedMemoryView`` or
  ``ManifestView``), wrapped so the last running snapshot is kept in ``<run_dir>/metrics-last.json``;
* orders and trades: the OMS database (``[oms] database_url``, default SQLite in the run dir);
* kill switch and trading state: the risk control block the view is attached to;
* pause / resume: a ``control_message`` on the strategy worker's ``control.<worker>`` ring, under
  the same lock file ``hftshm strategies pause`` takes;
* backtests: ``hftshm.backtest.run_backtest`` with the platform config, one job at a time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hftshm.codes import ControlKind, TradingState, parse_code
from hftshm.metrics.discovery import LAST_RUN_FILE, LastRunRecorder, fallback_for
from hftshm.security.tokens import resolve_secret
from hftshm.web.provider import Unavailable, UnknownStrategy

log = logging.getLogger("hftshm.web")

DEFAULT_BACKTEST_DATA = "data/btcusdt_20240808.csv.gz"
_BACKTEST_FIELDS = ("strategy", "params", "data", "seed", "symbol")


class PlatformTradingProvider:
    """``TradingProvider`` over a running platform (see the module docstring)."""

    def __init__(self, config, view):
        self.config = config
        self.view = view
        self.run_dir = Path(config.platform.run_dir)
        self.symbol_names = {s.symbol_id: s.name for s in config.symbols}
        self._reader = None

    # -- reads -----------------------------------------------------------------------------------

    def _strategy_names(self) -> dict[int, str]:
        return {s.strategy_id: s.name for s in self.view.snapshot().strategies}

    def _oms(self):
        if self._reader is None:
            from hftshm.web.oms_reader import OmsReader

            oms = self.config.oms
            self._reader = OmsReader(oms.database_url_for(self.run_dir), schema=oms.database_schema,
                                     strategy_names=self._strategy_names, symbol_names=self.symbol_names)
        return self._reader

    def orders(self, **filters):
        return self._oms().orders(**filters)

    def trades(self, **filters):
        return self._oms().trades(**filters)

    # -- operator actions ------------------------------------------------------------------------

    def _control_block(self):
        control = getattr(self.view, "control", None)
        if control is None:
            raise Unavailable("no risk control block: the platform is not running")
        return control

    def set_kill_switch(self, active: bool, *, actor: str) -> None:
        self._control_block().set_kill_switch(bool(active))
        log.warning("kill switch set %s by %s", "on" if active else "off", actor)

    def set_trading_state(self, state: str, *, actor: str) -> None:
        self._control_block().set_trading_state(parse_code(TradingState, state, "trading state"))
        log.warning("trading state set to %s by %s", state, actor)

    def set_strategy_paused(self, name: str, paused: bool, *, actor: str) -> None:
        from hftshm.runtime.manifest import NoRunningPlatform, read_running

        strategy = next((s for s in self.view.snapshot().strategies if s.name == name and s.state != "removed"), None)
        if strategy is None:
            raise UnknownStrategy(name)
        try:
            manifest = read_running(self.run_dir)
        except NoRunningPlatform as exc:
            raise Unavailable(str(exc)) from None
        from hftshm.strategies.control import ControlError, send_control

        kind = ControlKind.STRATEGY_PAUSE if paused else ControlKind.STRATEGY_RESUME
        try:
            send_control(manifest, kind, strategy.strategy_id, worker=strategy.worker)
        except ControlError as exc:
            raise Unavailable(str(exc)) from None
        log.warning("strategy %s %s by %s", name, "paused" if paused else "resumed", actor)


class BacktestRunner:
    """``runner(params)`` for the job queue: ``{"strategy": ..., "params": {...}, "data": path,
    "seed": n, "symbol": ...}`` -> the backtest's summary (``BacktestResult.to_dict``)."""

    def __init__(self, config):
        self.config = config

    def validate(self, body: dict) -> dict:
        unknown = sorted(set(body) - set(_BACKTEST_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_BACKTEST_FIELDS)}")
        strategy = body.get("strategy")
        if not isinstance(strategy, str) or not strategy:
            raise ValueError("strategy (a [strategies] instance name or a strategy class) is required")
        params = body.get("params", {})
        if not isinstance(params, dict):
            raise ValueError("params must be an object of strategy parameters")
        data = body.get("data", DEFAULT_BACKTEST_DATA)
        if not isinstance(data, str) or not Path(data).is_file():
            raise ValueError(f"data {data!r} is not a readable data file")
        seed = body.get("seed", 1)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError("seed must be an integer")
        symbol = body.get("symbol")
        if symbol is not None and not isinstance(symbol, str):
            raise ValueError("symbol must be a string")
        return {"strategy": strategy, "params": params, "data": data, "seed": seed, "symbol": symbol}

    def __call__(self, params: dict) -> dict:
        from hftshm.backtest import run_backtest

        result = run_backtest(self.config, params["data"], params["strategy"], params["params"], params["seed"],
                              symbol=params["symbol"])
        return result.to_dict(curve=False)


def record_last_run(app, snapshot) -> None:
    """Keep ``snapshot`` (the run's final one, taken before the view closes) as what the app serves
    and exports once the platform has stopped, and in ``<run_dir>/metrics-last.json``."""
    app.extensions["hftshm"]["collector"].view.record(snapshot)


def create_platform_app(config, view):
    """The app for a platform config (``hftshm.platform.PlatformConfig``) and a ``PlatformView``.
    After the run, ``record_last_run(app, final_snapshot)`` before closing ``view``."""
    from hftshm.web.app import create_app

    run_dir = Path(config.platform.run_dir)
    secret = resolve_secret(config.web.jwt_secret, run_dir)
    from hftshm.bridge.reports import with_imported_positions

    view = with_imported_positions(config, view)  # a monitor host: positions from imported execution reports
    recorded = LastRunRecorder(view, run_dir / LAST_RUN_FILE)
    from hftshm.audit.controls import operator_controls

    controls = operator_controls(config, run_dir, find_block=lambda: getattr(recorded, "control", None))
    controls.audit.start()  # delivers the journal to the OMS database behind the requests
    return create_app(config.web, recorded, trading=PlatformTradingProvider(config, recorded),
                      backtest_runner=BacktestRunner(config), jwt_secret=secret,
                      fallback=fallback_for(config, run_dir), controls=controls, limits=limits_of(config))


def limits_of(config) -> dict:
    """The risk limits in force, as GET /api/risk/status reports them."""
    from dataclasses import asdict

    risk = getattr(config, "risk", None)
    if risk is None:
        return {}
    from hftshm.risk.state import limit_units
    from hftshm.units import ACCOUNT_UNIT

    out = asdict(risk)
    out["initial_state"] = risk.initial_state.name.lower()
    # which unit each limit is in: sizes in the symbol's quantity unit (contracts on an inverse market)
    out["units"] = {"max_daily_loss": ACCOUNT_UNIT,
                    "symbols": {s.name: limit_units(s) for s in getattr(config, "symbols", None) or []}}
    return out
