"""CLI: ``hftshm data import|books|check|info`` — exchange recordings to tick CSV, L2 books, validation,
instruments."""

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


def _config_symbols(config: Path):
    """[symbols] of the config file (None when the file does not exist or has no [symbols])."""
    from hftshm.config import ConfigError, read_toml
    from hftshm.symbols import SymbolTable

    if not Path(config).exists():
        return None
    try:
        raw = read_toml(config)
        return SymbolTable.from_section(raw.get("symbols")) if raw.get("symbols") else None
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None


def _symbols(config: Path, data: list[Path] | None = None):
    """The symbol table for ``data``: its instruments (sidecar, else inferred from the rows) merged with
    [symbols] of the config, the config overriding; an instrument the config contradicts stops here."""
    from hftshm.feed.instruments import InstrumentError, symbols_for_data
    from hftshm.symbols import DEFAULT_SYMBOLS

    configured = _config_symbols(config)
    if not data:
        return configured or DEFAULT_SYMBOLS
    try:
        return symbols_for_data([p for p in data if Path(p).is_file()], configured)
    except InstrumentError as exc:
        _fail(str(exc))


class _Progress:
    """A rich progress bar (bytes, rate, ETA) that appears only once a job has run ~2 s, and never with
    --quiet or when the output is not a terminal."""

    def __init__(self, console, description: str, total: int, quiet: bool, delay_s: float = 2.0):
        import time

        self._console, self._description, self._total = console, description, total
        self._enabled = not quiet and console.is_terminal
        self._started = time.perf_counter()
        self._delay = delay_s
        self._bar = None
        self._task = None

    def update(self, done: int, total: int | None = None, rows: int | None = None) -> None:
        """``done`` bytes of ``total`` read; ``rows`` so far when the caller counts them (rows/s shown)."""
        import time

        if not self._enabled:
            return
        elapsed = time.perf_counter() - self._started
        if self._bar is None:
            if elapsed < self._delay:
                return
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)

            self._bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                 console=self._console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self._description, total=total or self._total, rate="")
        rate = f"{rows / max(elapsed, 1e-9):,.0f} rows/s" if rows is not None else ""
        self._bar.update(self._task, completed=done, rate=rate)

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


QuietOption = typer.Option(False, "--quiet", "-q", help="no progress bar")
IMPORT_FORMATS = ("binance", "tardis", "hftbacktest")


def _importer(fmt: str):
    if fmt == "tardis":
        from hftshm.feed.tardis import import_tardis

        return import_tardis
    if fmt == "hftbacktest":
        from hftshm.feed.hftbacktest_npz import import_npz

        return import_npz
    from hftshm.feed.binance import import_files

    return import_files


def _fail(message: str, code: int = 2) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@data_app.command("import")
def import_command(
    sources: List[Path] = typer.Argument(..., help="recordings: '<local ns> <stream JSON>' lines, gzip or plain; "
                                                    "several files of one recording continue each other"),
    out: Path = typer.Option(..., "--out", "-o", help="tick CSV to write (.gz compresses)"),
    format: str = typer.Option("binance", "--format",
                               help="binance (spot and futures stream recordings), tardis (Tardis.dev CSV: "
                                    "incremental_book_L2, book_snapshot_N, trades, quotes), hftbacktest (npz "
                                    "event files)"),
    strict: bool = typer.Option(False, "--strict", help="stop at the first malformed line"),
    compress_level: int = typer.Option(1, "--compress-level", min=1, max=9,
                                       help="gzip level for a .gz output (1: fastest, compression is most of an "
                                            "import's time; 6: about a quarter smaller, twice the time)"),
    tick_size: List[str] = typer.Option(None, "--tick-size", help="SYMBOL=STEP: price grid (default: inferred)"),
    lot_size: List[str] = typer.Option(None, "--lot-size", help="SYMBOL=STEP: quantity grid (default: inferred)"),
    contract_size: List[str] = typer.Option(None, "--contract-size",
                                            help="SYMBOL=USD: inverse contract size (default: Binance COIN-M, "
                                                 "BTC 100, others 10)"),
    market: List[str] = typer.Option(None, "--market", help="SYMBOL=spot|linear|inverse (default: from the streams)"),
    quiet: bool = QuietOption,
    symbol: str = typer.Option(None, "--symbol", help="hftbacktest npz: the symbol its events are of (required)"),
) -> None:
    """Convert exchange recordings to the canonical tick CSV, with Binance's book synchronisation; each
    symbol's instrument (market, tick, lot, contract size) goes to OUT.instruments.json next to it."""
    from rich.console import Console

    from hftshm.feed.binance import FeedImportError
    from hftshm.feed.instruments import parse_overrides

    fmt = format.lower()
    if symbol and fmt != "hftbacktest":
        raise typer.BadParameter("--symbol names the symbol of an hftbacktest npz; the other formats say it",
                                 param_hint="--symbol")
    if fmt not in IMPORT_FORMATS:
        raise typer.BadParameter(f"format {format!r} is not supported; supported: {', '.join(IMPORT_FORMATS)}",
                                 param_hint="--format")
    console = Console()
    total = sum(p.stat().st_size for p in sources if p.is_file())
    overrides = {"tick_size": parse_overrides(tick_size, "--tick-size"),
                 "lot_size": parse_overrides(lot_size, "--lot-size"),
                 "contract_size": parse_overrides(contract_size, "--contract-size"),
                 "market": {k: v.lower() for k, v in parse_overrides(market, "--market").items()}}
    with _Progress(console, "importing", total, quiet) as progress:
        try:
            convert = _importer(fmt)
            kwargs = {"symbol": symbol} if fmt == "hftbacktest" else {}
            summary = convert(sources, out, strict=strict, compresslevel=compress_level,
                              on_progress=progress.update, overrides=overrides, **kwargs)
        except FeedImportError as exc:
            _fail(str(exc))
    _print_import_summary(console, summary, out)
    if summary.rejects:
        raise typer.Exit(1)


def _describe_instrument(inst) -> str:
    contract = f", contract {inst.contract_size} USD" if inst.market == "inverse" else ""
    inferred = ""
    if inst.inferred_tick_size and (inst.inferred_tick_size != inst.tick_size or inst.inferred_lot_size != inst.lot_size):
        inferred = f" (data alone: tick {inst.inferred_tick_size}, lot {inst.inferred_lot_size})"
    return (f"{inst.symbol} (id {inst.symbol_id}): {inst.market}, tick {inst.tick_size}, lot {inst.lot_size}"
            f"{contract}{inferred}")


def _print_import_summary(console, summary, out: Path) -> None:
    console.print(f"{out}: {summary.rows:,} rows from {summary.lines:,} lines in {summary.elapsed_s:.2f} s "
                  f"({summary.rows_per_s:,.0f} rows/s; {summary.cpu_s:.2f} s of CPU)")
    console.print("rows by kind: " + ", ".join(f"{kind} {summary.rows_by_kind.get(kind, 0):,}"
                                               for kind in ("depth", "snapshot", "trade", "bbo", "clear")))
    symbols = ", ".join(sorted(summary.symbols)) or "(none)"
    console.print(f"symbols: {symbols}; snapshots applied: {summary.snapshots_applied}")
    for inst in summary.instruments:
        console.print(f"instrument {_describe_instrument(inst)}")
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
    quiet: bool = QuietOption,
) -> None:
    """Rebuild the L2 book and write the top N levels at every consistent point (end of a book message).
    Rows the book rejects (off its instrument's grid) stop it: exit 1, nothing written."""
    import time

    from rich.console import Console

    from hftshm.book.book import BookSet
    from hftshm.book.books_csv import BooksRejected, write_books
    from hftshm.feed.tickcsv import RowReport, TickCsvError, iter_records

    console = Console()
    _require_file(source)
    symbols = _symbols(config, [source])
    books = BookSet(symbols)
    report = RowReport(str(source))
    started = time.perf_counter()
    try:
        with _Progress(console, "books", source.stat().st_size, quiet) as progress:
            blocks = iter_records(source, symbols, strict=strict, report=report, on_progress=progress.update)
            rows = write_books(books, blocks, out, levels, accept=lambda: _book_refusal(source, books, report))
    except TickCsvError as exc:
        _fail(str(exc))
    except BooksRejected as exc:
        _print_problems(console, report, books)
        _fail(f"{exc}; {out} not written", code=1)
    elapsed = time.perf_counter() - started
    console.print(f"{out}: {rows:,} book rows ({levels} levels) from {report.records:,} events in {elapsed:.2f} s")
    _print_problems(console, report, books)
    if report.rejected:
        raise typer.Exit(1)


def _require_file(source: Path) -> None:
    if not Path(source).is_file():
        _fail(f"{source} does not exist or is not a file")


def _book_refusal(source: Path, books, report) -> str | None:
    """Why the books must not be written: events off their instrument's grid (named by line), or most of
    the input lost to rejects."""
    from decimal import Decimal

    from hftshm.book.issues import BookIssue
    from hftshm.feed.instruments import first_off_grid, text_of

    for name, issues in books.issues().items():
        for issue, column, what in ((BookIssue.OFF_TICK, 5, "tick"), (BookIssue.OFF_LOT, 6, "lot")):
            count = issues.get(issue, 0)
            if not count:
                continue
            sym = books[name].symbol
            step = Decimal(repr(sym.tick_size if what == "tick" else sym.lot_size)).normalize()
            found = first_off_grid(source, name, column, step)
            where = f"{source}:{found[0]}: {name} {'price' if column == 5 else 'qty'} {found[1]}" if found else \
                f"{source}: {name}"
            return (f"{where} is off the {what} size grid {text_of(step)} ({count:,} event(s) off it); fix the "
                    f"instrument ({source.name}.instruments.json, [symbols.{name}] or --tick-size/--lot-size at "
                    f"import)")
    unknown = books.unknown_symbol_events()
    if unknown:
        return f"{source}: {unknown:,} event(s) of symbols without an instrument"
    return None


@data_app.command("check")
def check_command(
    source: Path = typer.Argument(..., help="tick CSV (plain or .gz)"),
    strict: bool = typer.Option(False, "--strict", help="stop at the first malformed row"),
    config: Path = ConfigOption,
    quiet: bool = QuietOption,
) -> None:
    """Validate a tick CSV: rows by kind, time span, tick and lot sizes, clock offset, book problems.
    Exits 1 when rows were rejected or the book rejected events."""
    import time

    from rich.console import Console

    from hftshm.book.book import BookSet
    from hftshm.feed.tickcsv import RowReport, TickCsvError, iter_records

    console = Console()
    _require_file(source)
    symbols = _symbols(config, [source])
    books = BookSet(symbols)
    report = RowReport(str(source))
    started = time.perf_counter()
    try:
        with _Progress(console, "checking", source.stat().st_size, quiet) as progress:
            for block in iter_records(source, symbols, strict=strict, report=report, on_progress=progress.update):
                books.apply(block)
    except TickCsvError as exc:
        _fail(str(exc))
    elapsed = time.perf_counter() - started
    console.print(f"{source}: {report.lines:,} lines, {report.records:,} events, {report.rejected:,} rejected, "
                  f"{report.warnings:,} warnings, checked in {elapsed:.2f} s "
                  f"({report.lines / max(elapsed, 1e-9):,.0f} rows/s)")
    _print_statistics(console, report, books)
    _print_problems(console, report, books)
    refusal = _book_refusal(source, books, report) if books.rejected() else None
    if refusal:
        console.print(f"[red]error:[/red] {refusal}")
    if report.rejected or books.rejected():
        raise typer.Exit(1)


@data_app.command("export-hftbacktest")
def export_hftbacktest_command(
    source: Path = typer.Argument(..., help="tick CSV (plain or .gz)"),
    out: Path = typer.Option(..., "--out", "-o", help="hftbacktest event file to write (.npz)"),
    symbol: str = typer.Option(None, "--symbol", help="the symbol to export (required when the file holds several)"),
    config: Path = ConfigOption,
    quiet: bool = QuietOption,
) -> None:
    """Write one symbol of a tick CSV as an hftbacktest npz event file (its 64-byte event dtype, EXCH/LOCAL
    flags from the exchange-time and local-time orders)."""
    import time

    from rich.console import Console

    from hftshm.feed.binance import FeedImportError
    from hftshm.feed.hftbacktest_npz import export_npz
    from hftshm.feed.tickcsv import TickCsvError

    console = Console()
    _require_file(source)
    symbols = _symbols(config, [source])
    started = time.perf_counter()
    try:
        with _Progress(console, "exporting", source.stat().st_size, quiet) as progress:
            counts = export_npz(source, out, symbols, symbol.upper() if symbol else None, on_progress=progress.update)
    except (FeedImportError, TickCsvError) as exc:
        _fail(str(exc))
    except KeyError as exc:
        _fail(str(exc.args[0]))
    console.print(f"{out}: {counts['rows']:,} hftbacktest rows for {counts['events']:,} events in "
                  f"{time.perf_counter() - started:.2f} s: " + ", ".join(
                      f"{k} {counts[k]:,}" for k in ("depth", "snapshot", "clear", "trade", "bbo")))


@data_app.command("info")
def info_command(
    source: Path = typer.Argument(..., help="tick CSV (plain or .gz)"),
    config: Path = ConfigOption,
    write: bool = typer.Option(False, "--write", help="a CSV without instruments file: write the inferred one "
                                                      "(what hftshm run reads for [feed] data)"),
    market: List[str] = typer.Option(None, "--market", help="with --write: SYMBOL=spot|linear|inverse"),
) -> None:
    """The instruments of a tick CSV (its .instruments.json sidecar, else inferred from the rows), merged
    with [symbols] of the config, and each symbol's time range and row counts."""
    from datetime import datetime, timezone

    from rich.console import Console

    from hftshm.feed import instruments as inst

    console = Console()
    _require_file(source)
    symbols = _symbols(config, [source])
    body = inst.read_sidecar(source)
    if body is not None:
        found, stats = inst.instruments_of(source), body.get("symbols", {})
        console.print(f"{source}: instruments from {inst.sidecar_path(source).name}"
                      + (f" (imported from {', '.join(body['sources'])})" if body.get("sources") else ""))
    else:
        stats, _report = inst.scan_csv(source)
        try:
            found = inst.build_instruments(stats, {}, market_overrides={
                k: v.lower() for k, v in inst.parse_overrides(market, "--market").items()})
        except inst.InstrumentError as exc:
            _fail(str(exc))
        console.print(f"{source}: no {inst.SIDECAR_SUFFIX} sidecar; instruments inferred from the rows "
                      f"(market kind: from --market, else linear unless the name says inverse)")
        if write:
            console.print(f"wrote {inst.write_sidecar(source, found, stats)}")

    def when(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

    for item in found:
        console.print(f"instrument {_describe_instrument(item)}")
        if item.symbol in symbols:
            used = symbols.by_name(item.symbol)
            console.print(f"  as used with {config}: id {used.symbol_id}, {used.market}, tick {_step_text(used.tick_size)}, "
                          f"lot {_step_text(used.lot_size)}" + (f", contract {used.contract_size:g} USD"
                                                      if used.market == "inverse" else ""))
        s = stats.get(item.symbol)
        if s:
            rows = s["rows"]
            console.print(f"  {when(s['first_exch_ts_ns'])} .. {when(s['last_exch_ts_ns'])} UTC (exchange time), "
                          f"{sum(rows.values()):,} rows: "
                          + ", ".join(f"{k} {rows.get(k, 0):,}" for k in ("depth", "snapshot", "trade", "bbo", "clear")))


def _step_text(value: float) -> str:
    from decimal import Decimal

    from hftshm.feed.instruments import text_of

    return text_of(Decimal(repr(float(value))))


def _e8_text(gcd_e8: int) -> str:
    from hftshm.feed.instruments import step_from_e8, text_of

    step = step_from_e8(gcd_e8)
    return text_of(step) if step is not None else "-"


def _print_statistics(console, report, books) -> None:
    for name, stats in report.symbol_stats.items():
        rows = stats["rows"]
        span = (stats["last_exch_ts_ns"] - stats["first_exch_ts_ns"]) / 1e9
        book = books[name]
        bid, ask = book.levels_decimal(1)
        console.print(f"[bold]{name}[/bold] (id {stats['symbol_id']}): "
                      + ", ".join(f"{k} {rows[k]:,}" for k in ("depth", "snapshot", "trade", "bbo", "clear"))
                      + f"; {span:,.1f} s of exchange time")
        data_tick, data_lot = (_e8_text(stats["price_gcd_e8"]), _e8_text(stats["qty_gcd_e8"]))
        used = book.symbol
        console.print(f"  {used.market}; tick size: data {data_tick} (prices printed with up to "
                      f"{stats['price_decimals']} decimals), used {_step_text(used.tick_size)}; lot size: data "
                      f"{data_lot}, used {_step_text(used.lot_size)}"
                      + (f"; contract {used.contract_size:g} USD" if used.market == "inverse" else ""))
        console.print(f"  final book: bid {bid[0][0] if bid else '-'} / ask {ask[0][0] if ask else '-'}, "
                      f"{book.depth()[0]:,} bid and {book.depth()[1]:,} ask levels, "
                      f"{'valid' if book.valid else 'NOT valid (no snapshot since start or since a gap)'}, "
                      f"{book.messages:,} book messages")
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
