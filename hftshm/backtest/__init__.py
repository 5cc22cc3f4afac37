"""Backtests: a strategy, risk, the OMS and the simulated exchange in one process over recorded data.

``run_backtest(config, data, strategy, params, seed) -> BacktestResult`` (api.py) is the entry
point; ``BacktestResult.write(dir)`` writes report.json, report.html (equity curve as inline SVG)
and fills.csv. ``sweep.run_sweep`` runs a parameter grid in parallel processes.
"""

from hftshm.backtest.api import run_backtest
from hftshm.backtest.report import BacktestResult

__all__ = ["BacktestResult", "run_backtest"]
