"""CLI: ``hftshm bench X``. Each benchmark module registers its own command on the bench group."""

from __future__ import annotations

import importlib

import typer

bench_app = typer.Typer(help="Benchmarks: each prints a table and, with --json PATH, writes {\"results\": [...]}.",
                        no_args_is_help=True)

_BENCH_MODULES = ("ring", "book", "feed", "match", "risk", "oms", "pipeline", "backtest", "metrics", "bridge",
                  "sweep_dask")


def register(app: typer.Typer) -> None:
    for name in _BENCH_MODULES:
        module = importlib.import_module(f"hftshm.bench.{name}")
        module.register(bench_app)
    importlib.import_module("hftshm.bench.live").register(bench_app)  # a line of its own: merges cleanly
    app.add_typer(bench_app, name="bench")
