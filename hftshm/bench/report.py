"""How every benchmark reports: a table for people, ``{"results": [...]}`` JSON for tools."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


def percentiles_ns(samples_ns: np.ndarray) -> dict[str, float]:
    """p50/p99/p99.9 of a latency sample, in ns (empty sample -> NaN)."""
    if len(samples_ns) == 0:
        return {"p50_ns": float("nan"), "p99_ns": float("nan"), "p999_ns": float("nan")}
    p50, p99, p999 = np.percentile(samples_ns, [50, 99, 99.9])
    return {"p50_ns": float(p50), "p99_ns": float(p99), "p999_ns": float(p999)}


def _cell(value) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def emit(title: str, results: list[dict], json_path: str | Path | None = None, notes: list[str] | None = None,
         width: int | None = None, columns: list[str] | None = None) -> None:
    """Print ``results`` as a table (columns in first-seen order) and write them as JSON if asked.
    ``width``: the table's width in characters even when printed to a file (default: the terminal's);
    ``columns``: only these in the table (the JSON keeps every key)."""
    if columns is None:
        columns = []
        for row in results:
            for key in row:
                if key not in columns:
                    columns.append(key)
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in ("name", "transport") else "right")
    for row in results:
        table.add_row(*(_cell(row.get(c, "")) for c in columns))
    console = Console(width=width)
    console.print(table)
    for note in notes or []:
        console.print(note)
    if json_path:
        payload = {"results": results, "machine": {"cpus": _cpus(), "python": platform.python_version()}}
        if notes:
            payload["notes"] = notes
        Path(json_path).write_text(json.dumps(payload, indent=2, default=float) + "\n")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))
