"""The ``hftshm`` command line. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="hftshm",
    help="hftshm: replay real exchange data through strategies, risk, an OMS and a simulated exchange "
    "over shared-memory rings, and watch latency and PnL live.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help reads as written: rich markup would eat "[strategies]" and the like
)

# Each module defines register(app). Order is the order of --help.
_COMMAND_MODULES = ("run", "data", "exchange", "strategies", "risk", "orders", "web", "backtest", "bench", "layouts",
                    "audit", "journal")

for _name in _COMMAND_MODULES:
    importlib.import_module(f"hftshm.cli.{_name}").register(app)
importlib.import_module("hftshm.cli.record").register(app)  # live data (a line of its own: merges cleanly)


def main() -> None:
    app()
