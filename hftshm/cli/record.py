"""CLI: ``hftshm record``: record Binance public streams to raw files ``hftshm data import`` reads."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import typer

from hftshm.config import ConfigError


def register(app: typer.Typer) -> None:
    app.command("record")(record_command)


def _endpoints(values: list[str], option: str) -> dict[str, str]:
    out = {}
    for value in values:
        market, sep, url = value.partition("=")
        if not sep or not url:
            raise ConfigError(f"{option} takes MARKET=URL (e.g. usdm=ws://127.0.0.1:9000/stream), found {value!r}")
        out[market] = url
    return out


def _subscriptions(targets: list[str], default_market: str, ws: dict, rest: dict, limit: int):
    from hftshm.feed.live_client import DEFAULT_MARKETS, Subscription, market_for

    by_market: dict[str, list[str]] = {}
    for target in targets:
        market, sep, symbol = target.rpartition(":")
        market = market if sep else default_market
        if not symbol or not symbol.replace("_", "").isalnum():
            raise ConfigError(f"not a symbol: {target!r} (SYMBOL or MARKET:SYMBOL, e.g. usdm:BTCUSDT)")
        by_market.setdefault(market, [])
        if symbol.upper() not in by_market[market]:
            by_market[market].append(symbol.upper())
    for market in list(ws) + list(rest):
        if market not in DEFAULT_MARKETS:
            raise ConfigError(f"endpoint for unknown market {market!r}; known: {', '.join(DEFAULT_MARKETS)}")
    return [Subscription(market_for(m, ws.get(m), rest.get(m)), tuple(symbols), limit)
            for m, symbols in by_market.items()]


def record_command(
    targets: list[str] = typer.Argument(..., help="SYMBOL or MARKET:SYMBOL (markets: spot, usdm, coinm)"),
    market: str = typer.Option("usdm", help="market of the symbols given without one"),
    out: Path = typer.Option(Path("recordings"), "--out", "-o", help="directory of the recordings"),
    rotate_mb: float = typer.Option(0.0, help="start a new file past this many MB (0: only at midnight UTC)"),
    duration: float = typer.Option(None, help="stop after this many seconds"),
    max_frames: int = typer.Option(None, help="stop after this many frames"),
    ws_url: list[str] = typer.Option([], "--ws-url", help="MARKET=URL combined-stream endpoint (default Binance's)"),
    rest_url: list[str] = typer.Option([], "--rest-url", help="MARKET=URL depth snapshot endpoint (default Binance's)"),
    snapshot_limit: int = typer.Option(1000, help="levels per side in the REST snapshot"),
    heartbeat_timeout: float = typer.Option(10.0, help="reconnect when no frame arrives for this many seconds"),
    quiet: bool = typer.Option(False, "--quiet", help="no live status line"),
) -> None:
    """Record depth diffs, trades and best bid/ask (+ REST snapshots) to gzip files, one per market,
    symbol and UTC day: `<receive ns> <frame JSON>` lines, as `hftshm data import` reads them.

    Reconnects with backoff, takes a fresh snapshot after a reconnect or a sequence gap, and reports
    every gap. Ctrl-C stops cleanly (files are closed and complete).
    """
    import logging

    from hftshm.feed.live_client import BinanceStreamClient
    from hftshm.feed.live_record import Recorder

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        subs = _subscriptions(targets, market, _endpoints(ws_url, "--ws-url"), _endpoints(rest_url, "--rest-url"),
                              snapshot_limit)
        if rotate_mb < 0 or (duration is not None and duration <= 0) or (max_frames is not None and max_frames <= 0):
            raise ConfigError("--rotate-mb must be >= 0, --duration and --max-frames > 0")
        recorder = Recorder(out, subs, rotate_bytes=int(rotate_mb * 1e6))
        client = BinanceStreamClient(subs, recorder, heartbeat_timeout_s=heartbeat_timeout)
    except (ConfigError, OSError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    recorder.client = client
    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signum

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    client.start()
    try:
        _wait(client, recorder, started, duration, max_frames, stop, live=not quiet and sys.stdout.isatty())
    finally:
        client.stop()
        report = recorder.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    _print_report(report, client, time.monotonic() - started)
    if report.frames == 0:
        typer.secho(f"error: no data received ({client.stats.last_error or 'nothing arrived'})", fg="red", err=True)
        raise typer.Exit(1)


def _status(client, recorder, started: float, rate: float) -> str:
    s = client.stats
    return (f"recording {time.monotonic() - started:7.1f} s  {s.frames:>10,} frames  {rate:8,.0f} msg/s  "
            f"snapshots {s.snapshots}  gaps {len(recorder.report.gaps)}  reconnects {max(s.connects - 1, 0)}  "
            f"{recorder.bytes_written() / 1e6:8.2f} MB")


def _wait(client, recorder, started, duration, max_frames, stop, live: bool) -> None:
    from contextlib import nullcontext

    from rich.live import Live
    from rich.text import Text

    display = Live(Text(""), refresh_per_second=4, transient=False) if live else nullcontext()
    last_t, last_frames, rate = time.monotonic(), 0, 0.0
    with display:
        while stop["signal"] is None:
            time.sleep(0.05)
            now = time.monotonic()
            if now - last_t >= 1.0:
                frames = client.stats.frames
                rate = (frames - last_frames) / (now - last_t)
                last_t, last_frames = now, frames
                if live:
                    display.update(Text(_status(client, recorder, started, rate)))
            if duration is not None and now - started >= duration:
                return
            if max_frames is not None and client.stats.frames >= max_frames:
                return


def _print_report(report, client, elapsed: float) -> None:
    s = client.stats
    typer.echo(f"recorded {report.frames:,} frames and {report.snapshots} snapshot(s) in {elapsed:.1f} s; "
               f"{s.connects} connection(s), {len(report.interruptions)} interruption(s), {s.stalls} stall(s), "
               f"{s.snapshot_errors} failed snapshot request(s)")
    for path in report.files:
        size = path.stat().st_size if path.exists() else 0
        typer.echo(f"  {path}  {size / 1e6:.2f} MB")
    typer.echo(f"gaps: {len(report.gaps)}" + (" (each followed by a fresh snapshot)" if report.gaps else ""))
    for gap in report.gaps[:20]:
        typer.echo(f"  {gap.describe()}")
    for market, ns, reason in report.interruptions[:20]:
        typer.echo(f"  {market} interrupted at {ns}: {reason}")
    if report.stale_snapshots:
        typer.echo(f"snapshots older than the buffered diffs (another fetched): {report.stale_snapshots}")
    if report.rejects:
        typer.echo(f"malformed frames: {dict(report.rejects)}")
    if report.ignored_streams:
        typer.echo(f"frames of other streams: {dict(report.ignored_streams)}")
