"""CLI: ``hftshm data import|books|check`` — exchange recordings to tick CSV, L2 books, validation."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from hftshm.config import DEFAULT_CONFIG

data_app = typer.Typer(help="Market data: import exchange recordings, rebuild L2 books, validate tick files.",
                       no_args_is_help=True)

ConfigOption = typer.Option(DEFAULT_CONFIG, "--config", "-c",
                            help="platform config ([symbols] gives ids, tick and lot sizes)")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


def _symbols(config: Path):
    """[symbols] of the config file; the built-in table when the file does not exist."""
    from hftshm.config import ConfigError, read_toml
    from hftshm.symbols import DEFAULT_SYMBOLS, SymbolTable

    if not Path(config).exists():
        return DEFAULT_SYMBOLS
    try:
        raw = read_toml(config)
        return SymbolTable.from_section(raw.get("symbols")) if raw.get("symbols") else DEFAULT_SYMBOLS
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None


def _fail(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


@data_app.command("import")
def import_command(
    sources: List[Path] = typer.Argument(..., help="recordings: '<local ns> <stream JSON>' lines, gzip or plain"),
    out: Path = typer.Option(..., "--out", "-o", help="tick CSV to write (.gz compresses)"),
    format: str = typer.Option("binance", "--format", help="recording format (binance: spot and futures streams)"),
    strict: bool = typer.Option(False, "--strict", help="stop at the first malformed line"),
    compress_level: int = typer.Option(1, "--compress-level", min=1, max=9,
                                       help="gzip level for a .gz output (1: fastest, compression is most of an "
                                            "import's time; 6: about a quarter smaller, twice the time)"),
) -> None:
    """Convert exchange recordings to the canonical tick CSV, with Binance's book synchronisation."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from hftshm.feed.binance import FeedImportError, import_files

    if format.lower() != "binance":
        raise typer.BadParameter(f"format {format!r} is not supported; supported: binance", param_hint="--format")
    console = Console()
    total = sum(p.stat().st_size for p in sources if p.is_file())
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console, transient=True, disable=total < (8 << 20)) as progress:
        task = progress.add_task("importing", total=total)
        try:
            summary = import_files(sources, out, strict=strict, compresslevel=compress_level,
                                   on_progress=lambda done, _total: progress.update(task, completed=done))
        except FeedImportError as exc:
            _fail(str(exc))
    _print_import_summary(console, summary, out)
    if summary.rejects:
        raise typer.Exit(1)


def _print_import_summary(console, summary, out: Path) -> None:
    console.print(f"{out}: {summary.rows:,} rows from {summary.lines:,} lines in {summary.elapsed_s:.2f} s "
                  f"({summary.rows_per_s:,.0f} rows/s; {summary.cpu_s:.2f} s of CPU)")
    console.print("rows by kind: " + ", ".join(f"{kind} {summary.rows_by_kind.get(kind, 0):,}"
                                               for kind in ("depth", "snapshot", "trade", "bbo", "clear")))
    symbols = ", ".join(sorted(summary.symbols)) or "(none)"
    console.print(f"symbols: {symbols}; snapshots applied: {summary.snapshots_applied}")
    if summary.gaps:
        console.print(f"[yellow]{len(summary.gaps)} gap(s)[/yellow] in depth updates "
                      f"(book invalid until the next snapshot):")
        for gap in summary.gaps[:20]:
            console.print(f"  {gap.describe()}")
    else:
        console.print("gaps: none (every applied diff continued the previous one)")
    for reason, count in sorted(summary.dropped.items()):
        console.print(f"not written: {reason.replace('_', ' ')}: {count:,}")
    for reason, count in sorted(summary.notes.items()):
        console.print(f"note: {reason.replace('_', ' ')}: {count:,}")
    for stream, count in sorted(summary.ignored_streams.items()):
        console.print(f"ignored stream event {stream}: {count:,}")
    if summary.rejects:
        console.print(f"[red]{sum(summary.rejects.values()):,} malformed line(s) skipped[/red]: "
                      + ", ".join(f"{k}={v:,}" for k, v in summary.rejects.items()))
        for source, line, reason in summary.reject_lines[:20]:
            console.print(f"  {source}:{line}: {reason.replace('_', ' ')}")


@data_app.command("books")
def books_command(
    source: Path = typer.Argument(..., help="tick CSV (plain or .gz)"),
    out: Path = typer.Option(..., "--out", "-o", help="book CSV to write (.gz compresses)"),
    levels: int = typer.Option(10, "--levels", "-n", min=1, max=1000, help="levels per side"),
    strict: bool = typer.Option(False, "--strict", help="stop at the first malformed row"),
    config: Path = ConfigOption,
) -> None:
    """Rebuild the L2 book and write the top N levels at every consistent point (end of a book message)."""
    import time

    from rich.console import Console

    from hftshm.book.book import BookSet
    from hftshm.book.books_csv import write_books
    from hftshm.feed.tickcsv import RowReport, TickCsvError, iter_records

    console = Console()
    symbols = _symbols(config)
    books = BookSet(symbols)
    report = RowReport(str(source))
    started = time.perf_counter()
    try:
        rows = write_books(books, iter_records(source, symbols, strict=strict, report=report), out, levels)
    except TickCsvError as exc:
        _fail(str(exc))
    elapsed = time.perf_counter() - started
    console.print(f"{out}: {rows:,} book rows ({levels} levels) from {report.records:,} events in {elapsed:.2f} s")
    _print_problems(console, report, books)
    if report.rejected:
        raise typer.Exit(1)


@data_app.command("check")
def check_command(
    source: Path = typer.Argument(..., help="tick CSV (plain or .gz)"),
    strict: bool = typer.Option(False, "--strict", help="stop at the first malformed row"),
    config: Path = ConfigOption,
) -> None:
    """Validate a tick CSV: rows by kind, time span, tick and lot sizes, clock offset, book problems.
    Exits 1 when rows were rejected or the book rejected events."""
    import time

    from rich.console import Console

    from hftshm.book.book import BookSet
    from hftshm.feed.tickcsv import RowReport, TickCsvError, iter_records

    console = Console()
    symbols = _symbols(config)
    books = BookSet(symbols)
    report = RowReport(str(source))
    started = time.perf_counter()
    try:
        for block in iter_records(source, symbols, strict=strict, report=report):
            books.apply(block)
    except TickCsvError as exc:
        _fail(str(exc))
    elapsed = time.perf_counter() - started
    console.print(f"{source}: {report.lines:,} lines, {report.records:,} events, {report.rejected:,} rejected, "
                  f"{report.warnings:,} warnings, checked in {elapsed:.2f} s "
                  f"({report.lines / max(elapsed, 1e-9):,.0f} rows/s)")
    _print_statistics(console, report, books)
    _print_problems(console, report, books)
    if report.rejected or books.rejected():
        raise typer.Exit(1)


def _print_statistics(console, report, books) -> None:
    for name, stats in report.symbol_stats.items():
        rows = stats["rows"]
        span = (stats["last_exch_ts_ns"] - stats["first_exch_ts_ns"]) / 1e9
        book = books[name]
        bid, ask = book.levels_decimal(1)
        console.print(f"[bold]{name}[/bold] (id {stats['symbol_id']}): "
                      + ", ".join(f"{k} {rows[k]:,}" for k in ("depth", "snapshot", "trade", "bbo", "clear"))
                      + f"; {span:,.1f} s of exchange time")
        console.print(f"  tick size: data {stats['inferred_tick_size']} (prices have up to {stats['price_decimals']} "
                      f"decimals), config {stats['config_tick_size']}; lot size: data {stats['inferred_lot_size']}, "
                      f"config {stats['config_lot_size']}")
        console.print(f"  final book: bid {bid[0][0] if bid else '-'} / ask {ask[0][0] if ask else '-'}, "
                      f"{book.depth()[0]:,} bid and {book.depth()[1]:,} ask levels, "
                      f"{'valid' if book.valid else 'NOT valid (no snapshot since start or since a gap)'}, "
                      f"{book.messages:,} book messages")
        inferred = stats["inferred_tick_size"]
        config_tick = stats["config_tick_size"]
        if inferred and config_tick and round(inferred / config_tick, 9) % 1:
            console.print(f"  [red]prices are on a {inferred} grid, not a multiple of the configured tick "
                          f"{config_tick}[/red]: fix [symbols.{name}] tick_size")
    offset = report.min_local_minus_exch_ns
    if offset is not None:
        behind = "behind" if offset < 0 else "ahead of"
        console.print(f"clock: min(local - exchange) over depth and trade events = {offset / 1e6:,.3f} ms: "
                      f"the recording clock ran at least {abs(offset) / 1e6:,.3f} ms {behind} the exchange's "
                      f"(feed latency is measured above this minimum, never as a raw difference)")


def _print_problems(console, report, books) -> None:
    problems = report.problem_lines()
    if problems:
        console.print("[yellow]rows:[/yellow]")
        for line in problems:
            console.print(f"  {line}")
    for symbol, issues in books.issues().items():
        if issues:
            counts = ", ".join(f"{i.name.lower()}={c:,}" for i, c in issues.items())
            console.print(f"[yellow]book {symbol}:[/yellow] {counts}")
    if not problems and not any(books.issues().values()):
        console.print("no problems found")
