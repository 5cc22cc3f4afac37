"""Test helpers: two small files of two symbols on two markets, derived from the shipped real recordings
(no network): the first rows of the USD-M BTCUSDT day and the spot ETHUSDT head recording imported."""

from __future__ import annotations

import gzip
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BTC_DAY = ROOT / "data" / "btcusdt_20240808.csv.gz"
SPOT_HEAD = ROOT / "tests" / "data" / "binance_spot_ethusdt_20240808_head.gz"


def btc_head(out: Path, rows: int) -> Path:
    """The first ``rows`` rows of the shipped USD-M day (its snapshot is at row 92); no sidecar: readers
    infer its instrument from the rows (or take [symbols.BTCUSDT])."""
    with gzip.open(BTC_DAY, "rt") as src, gzip.open(out, "wt") as dst:
        for k, line in enumerate(src):
            if k > rows:
                break
            dst.write(line)
    return out


def eth_spot_head(out: Path) -> Path:
    """The spot ETHUSDT head recording (23:54:14-23:54:38 UTC) imported: its sidecar says spot, 0.01, 0.0001."""
    from hftshm.feed.binance import import_files

    import_files([SPOT_HEAD], out)
    return out


def two_symbols(directory: Path, btc_rows: int = 20_000) -> tuple[Path, Path]:
    """(BTCUSDT USD-M file, ETHUSDT spot file) overlapping in exchange time (23:54:14 onwards)."""
    directory.mkdir(parents=True, exist_ok=True)
    return btc_head(directory / "btc.csv.gz", btc_rows), eth_spot_head(directory / "eth.csv.gz")


def floats_in(value):
    """Every float in a JSON-like tree of dicts and lists (a report, a summary): a test that no
    figure anywhere in it equals some forbidden value (a cross-currency sum) walks them all."""
    if isinstance(value, dict):
        for v in value.values():
            yield from floats_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from floats_in(v)
    elif isinstance(value, float):
        yield value
