"""Benchmark: risk (to be written)."""

from __future__ import annotations

import typer


def register(bench_app: typer.Typer) -> None:
    pass
