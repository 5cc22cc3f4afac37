"""``hftshm run``: the whole platform in one command.

Validates everything before anything starts (config, data, port, database, Redis), then runs the
supervisor, the web server (page, API, /metrics) in a thread of this process, a live status line,
and at the end of the data a summary. Any failure before the pipeline runs leaves nothing behind:
no process, no segment, no manifest.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hftshm.config import ConfigError
from hftshm.runtime import scheduling
from hftshm.runtime.supervisor import Supervisor, SupervisorError

log = logging.getLogger("hftshm.run")


@dataclass
class RunOptions:
    duration_s: float | None = None
    serve: bool = False
    web: bool = True
    live: bool = True
    summary_path: Path | None = None


class PreflightError(RuntimeError):
    """Something the run needs is missing or unreachable; the message says what and how to fix it."""


def preflight(config, web: bool) -> None:
    """Checks that need the outside world; config values themselves were validated on load."""
    config.feed.data_paths()  # a missing data file: ConfigError naming feed.data, before any process starts
    if web:
        host, port = config.web.host, config.web.port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise PreflightError(f"web.port {port} on {host} is not free ({exc.strerror}); choose another "
                                     f"with --port or [web] port, or stop what uses it") from None
    from hftshm.oms.store import Store, StoreError

    try:
        # creates the schema if needed: the OMS would at start, and a failure here leaves nothing behind
        Store(config.oms.database_url_for(config.platform.run_dir), schema=config.oms.database_schema,
              connect_timeout_s=3.0).close()
    except StoreError as exc:  # names the database (without password) and the driver's reason
        raise PreflightError(f"oms.database_url: {exc}") from None
    redis_url = config.redis.url
    if redis_url:
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
        except Exception as exc:
            raise PreflightError(f"redis.url {redis_url} is unreachable: {exc}") from None


class PlatformRun:
    def __init__(self, config, options: RunOptions):
        self.config = config
        self.options = options
        self.stop_reason: str | None = None
        self.started_unix_ns = time.time_ns()  # this run's OMS epochs start after it (the per-symbol summary)
        self.web_server = None
        self.app = None

    def _on_signal(self, signum, frame) -> None:
        self.stop_reason = signal.Signals(signum).name

    def run(self) -> int:
        from rich.console import Console

        console = Console()
        try:
            preflight(self.config, self.options.web)
        except (PreflightError, ConfigError) as exc:
            console.print(f"[red]cannot start:[/red] {exc}")
            return 2
        from hftshm.runtime.logs import level_from, setup_supervisor_logging

        setup_supervisor_logging(self.config.platform.run_dir, level_from(self.config.platform.log_level))
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        sup = Supervisor(self.config.topology, self.config)
        try:
            try:
                sup.create_segments()
                halted = started_halted_message(sup.controls_at_start)
                if halted:
                    console.print(f"[bold red]{halted}[/bold red]")
                sup.start()
            except (ConfigError, SupervisorError, OSError) as exc:
                console.print(f"[red]cannot start:[/red] {exc}")
                return 2
            policy = scheduling.as_batch_task()  # watching (and the web server) never preempts a worker
            try:
                self._run_pipeline(sup, console)
            finally:
                scheduling.restore(policy)
        finally:
            self._stop_web()
            sup.__exit__(None, None, None)  # drains what still runs, unlinks every segment
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def _run_pipeline(self, sup: Supervisor, console) -> None:
        view = self._view(sup)
        from hftshm.audit.controls import ControlWatcher, operator_controls

        watcher = ControlWatcher(operator_controls(self.config, sup.run_dir, find_block=lambda: sup.control)).start()
        try:
            if self.options.web:
                self._start_web(view, console)
            started = time.monotonic()
            self._loop(sup, view, started, console)
            # the run's time is the replay's: up to the end of the data, the --duration or the signal.
            # The drain after it is timed apart (stopped by --duration, a paced feed would otherwise
            # go on publishing through a wait for quiet, which then ran to its 5 s timeout and was
            # counted in: "--duration 5" reported 10 s)
            elapsed_s = time.monotonic() - started
            if self.stop_reason is None:
                sup.wait_quiet(timeout_s=5.0)  # end of data: the last events' work settles
            # sources stop, strategies cancel their resting orders and the pipeline settles; nobody
            # has closed yet, so the summary includes the cancels and workers still hold their segments
            sup.quiesce()
            drain_s = time.monotonic() - started - elapsed_s
            final = view.snapshot()
            sup.shutdown()
            summary = build_summary(final, elapsed_s, self.stop_reason)
            summary["drain_s"] = round(drain_s, 3)
            summary["symbols"] = self._symbols(final)
            summary["workers_after_drain"] = {w.name: w.state for w in view.snapshot().workers}
            summary["controls"] = {"at_start": sup.controls_at_start,
                                   "started_halted": started_halted_message(sup.controls_at_start),
                                   "at_end": {"kill_switch": sup.control.kill_switch,
                                              "trading_state": sup.control.trading_state.name.lower()}
                                   if sup.control is not None else {}}
            if self.app is not None:
                from hftshm.web.wiring import record_last_run

                record_last_run(self.app, final)
            print_summary(summary, console)
            if len(summary["symbols"]) > 1:
                from hftshm.runtime.symbol_summary import print_symbols

                print_symbols(summary["symbols"], console)
            if summary["controls"]["started_halted"]:
                console.print(f"[bold red]{summary['controls']['started_halted']}[/bold red]")
            self._write_summary(summary)
            if self.options.serve and self.options.web and self.stop_reason is None:
                console.print(f"serving the last values on {self._url()} (Ctrl-C to exit)")
                while self.stop_reason is None:
                    time.sleep(0.2)
        finally:
            watcher.stop()
            view.close()

    def _symbols(self, final) -> dict:
        """Per symbol: the strategies', risk's and the OMS database's figures (``symbol_summary``)."""
        from hftshm.runtime import symbol_summary as ss

        run_dir = self.config.platform.run_dir
        oms = self.config.oms
        names = {s.symbol_id: s.name for s in self.config.symbols}
        return ss.by_symbol(final, ss.read_risk_positions(run_dir),
                            ss.oms_by_symbol(oms.database_url_for(run_dir), names, oms.database_schema,
                                             self.started_unix_ns))

    def _view(self, sup: Supervisor):
        from hftshm.metrics.live import SharedMemoryView

        from hftshm.units import units_by_id

        names = {s.symbol_id: s.name for s in self.config.symbols}
        return SharedMemoryView.from_manifest(sup.manifest, symbol_names=names,
                                              symbol_units=units_by_id(self.config.symbols))

    def _loop(self, sup: Supervisor, view, started: float, console) -> None:
        from rich.live import Live

        deadline = started + self.options.duration_s if self.options.duration_s else None
        live = Live(console=console, refresh_per_second=4, transient=True) if self.options.live else None
        last_line = 0.0
        if live:
            live.start()
        try:
            while self.stop_reason is None:
                sup.poll()
                if sup.finished():
                    break
                if deadline and time.monotonic() >= deadline:
                    self.stop_reason = "duration"
                    break
                now = time.monotonic()
                if now - last_line >= 0.25:
                    line = status_line(view.snapshot(), now - started)
                    if live:
                        live.update(line)
                    elif now - last_line >= 5.0 or last_line == 0.0:
                        console.print(line)
                    last_line = now
                time.sleep(0.05)
        finally:
            if live:
                live.stop()

    def _url(self) -> str:
        return f"http://{self.config.web.host}:{self.config.web.port}/dashboard"

    def _start_web(self, view, console) -> None:
        from werkzeug.serving import make_server

        from hftshm.web.wiring import create_platform_app

        self.app = create_platform_app(self.config, view)
        self.web_server = make_server(self.config.web.host, self.config.web.port, self.app, threaded=True)
        threading.Thread(target=self.web_server.serve_forever, name="hftshm-web", daemon=True).start()
        console.print(f"dashboard: {self._url()}   metrics: http://{self.config.web.host}:{self.config.web.port}/metrics")

    def _stop_web(self) -> None:
        if self.web_server is not None:
            self.web_server.shutdown()
            self.web_server = None

    def _write_summary(self, summary: dict) -> None:
        path = self.options.summary_path or (Path(self.config.platform.run_dir) / "summary.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2, default=float) + "\n")


def started_halted_message(controls: dict) -> str:
    """What start and summary say when the persisted controls held trading back ("" if they did not)."""
    if not controls:
        return ""
    held = []
    if controls.get("kill_switch"):
        held.append("the kill switch is ON")
    if controls.get("trading_state", "active") != "active":
        held.append(f"trading state {controls['trading_state']}")
    if not held:
        return ""
    return (f"started halted: {' and '.join(held)} (persisted by {controls.get('changed_by') or '?'} via "
            f"{controls.get('source') or '?'}); no order is sent until 'hftshm kill-switch off' / "
            "'hftshm risk state active'")


# the histogram that measures the platform's headline figure: feed publish -> order leaves the OMS
TICK_TO_ORDER = "oms.tick_to_order"


def _counter(snapshot, worker: str, name: str) -> int:
    w = snapshot.worker(worker)
    return int(w.counters.get(name, 0)) if w else 0


def status_line(snapshot, elapsed_s: float) -> str:
    from hftshm.metrics.histogram import summarize

    events = _counter(snapshot, "feed", "events_published")
    total = _counter(snapshot, "feed", "events_total")
    progress = f"{events:,}/{total:,} ({100.0 * events / total:.0f}%)" if total else f"{events:,}"
    rate = events / elapsed_s if elapsed_s > 0 else 0.0
    tick_to_order = snapshot.histograms.get(TICK_TO_ORDER)
    figures = summarize(tick_to_order) if tick_to_order is not None else None
    p50 = f"{figures.p50_ns / 1e3:.1f}us" if figures is not None and figures.count else "-"
    line = account_pnl(snapshot)
    pnl = _pnl_text(line)
    return (f"events {progress}  {rate / 1e6:.2f}M/s  intents {_counter(snapshot, 'strategies', 'intents'):,}  "
            f"orders {_counter(snapshot, 'oms', 'orders'):,}  fills {_counter(snapshot, 'exchange', 'fills'):,}  "
            f"tick->order p50 {p50}  PnL {pnl}")


def _pnl_text(line: dict) -> str:
    """``+1.23`` or, with several settlement currencies, ``+1.23 USDT, -0.00001234 ETH``."""
    if line.get("total") is not None:
        return f"{line['total']:+,.2f}"
    return ", ".join(f"{row['pnl']:+,.8g} {currency}" for currency, row in line["by_currency"].items())


def account_pnl(snapshot) -> dict:
    """The summary's account line: risk's account (every strategy and symbol), and its total from
    those same parts. The total used to be the sum of the strategies' rows while the parts were
    risk's: after a restart the two sources can differ for a while (each rebuilds from the OMS's
    record on its own), and the line then showed a total that was not realized + unrealized - fees.
    ``strategies_total`` keeps the strategies' sum beside it, so a disagreement is visible. Both are in
    the account's unit (``unit``, the quote currency): an inverse position's coin PnL at its mark.

    ``by_currency``: each settlement currency's realized, unrealized, fees and PnL, its symbols' figures
    added in that currency. When the positions settle in several currencies (USDT and ETH) that is the
    only total: ``total`` and its parts are null, and risk's account at the marks (the figure its daily
    loss limit watches) is under ``risk_account_at_mark``, labelled as a conversion."""
    from hftshm.units import ACCOUNT_UNIT

    line = _account_line(snapshot, unit=ACCOUNT_UNIT)
    by_currency = snapshot.pnl_by_currency()
    if snapshot.several_currencies:
        return {"realized": None, "unrealized": None, "fees": None, "total": None, "unit": None,
                "by_currency": by_currency,
                "risk_account_at_mark": {**line, "what": "risk's account-wide figure for the daily loss limit: "
                                                          "each coin PnL converted at its mark"}}
    return {**line, "by_currency": by_currency}


def _account_line(snapshot, unit: str) -> dict:
    risk = snapshot.risk
    if risk is None:
        return {"realized": 0.0, "unrealized": 0.0, "fees": 0.0, "total": snapshot.total_pnl, "unit": unit}
    realized, unrealized, fees = float(risk.realized_pnl), float(risk.unrealized_pnl), float(risk.fees)
    line = {"realized": realized, "unrealized": unrealized, "fees": fees, "total": realized + unrealized - fees,
            "unit": unit}
    if snapshot.positions:
        line["strategies_total"] = float(sum(p.net_pnl_account for p in snapshot.positions))
    return line


def build_summary(snapshot, elapsed_s: float, stop_reason: str | None) -> dict:
    from hftshm.metrics.histogram import summarize

    latency = {}
    for name, counts in sorted(snapshot.histograms.items()):
        figures = summarize(counts)
        if figures.count:
            latency[name] = figures.as_dict()
    risk = snapshot.risk

    def count(worker: str, name: str) -> int:
        return _counter(snapshot, worker, name)

    headline = {
        "events": count("feed", "events_published"),
        "book_snapshots": count("feed", "snapshots_published"),
        "feed_gaps": count("feed", "gaps"),
        "rows_rejected": count("feed", "rows_rejected"),
        "signals": sum(s.signals for s in snapshot.strategies),
        "intents": count("strategies", "intents"),
        "risk_checked": risk.orders_checked if risk else 0,
        "risk_approved": risk.orders_approved if risk else 0,
        "orders": count("oms", "orders_created"),
        "resends": count("oms", "resends"),
        "fills": count("oms", "fills"),
        "ring_drops": sum(r.dropped_total for r in snapshot.rings),
        "ring_full_waits": sum(r.full_waits_total for r in snapshot.rings),
        "worker_restarts": sum(w.restarts for w in snapshot.workers),
    }
    return {
        "stopped_by": stop_reason or "end of data",
        "elapsed_s": round(elapsed_s, 3),
        "headline": headline,
        "workers": {w.name: {"state": w.state, "restarts": w.restarts, "work": w.work_count, **w.counters}
                    for w in snapshot.workers},
        "rings": {r.name: {"written": r.written_total, "full_waits": r.full_waits_total, "drops": r.dropped_total}
                  for r in snapshot.rings},
        "rejects_by_reason": {k: v for k, v in (risk.rejects_by_reason if risk else {}).items() if v},
        "positions": [p.__dict__ for p in snapshot.positions],
        "pnl": account_pnl(snapshot),
        "latency": latency,
    }


def print_summary(summary: dict, console) -> None:
    """The end-of-run report; every counter is also in summary.json beside the logs."""
    from rich.table import Table

    elapsed = summary["elapsed_s"]
    head = summary["headline"]
    console.print(f"[bold]run finished[/bold] ({summary['stopped_by']}) in {elapsed:.1f} s: "
                  f"{head['events']:,} events ({head['events'] / elapsed / 1e3 if elapsed else 0:,.0f}k/s)")
    table = Table(title="summary", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in head.items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    for reason, value in summary["rejects_by_reason"].items():
        table.add_row(f"rejected: {reason}", f"{value:,}")
    console.print(table)
    positions = Table(title="positions and PnL")
    for column in ("strategy", "symbol", "qty", "avg price", "realized", "unrealized", "fees", "PnL in"):
        positions.add_column(column, justify="right")
    for p in summary["positions"]:
        coin = p.get("market") == "inverse"  # PnL in the coin: a few 1e-5, not cents
        money = "{:+.8f}" if coin else "{:+.2f}"
        positions.add_row(str(p["strategy"]), str(p["symbol"]), f"{p['quantity']:.3f} {p.get('qty_unit', '')}",
                          f"{p['avg_price']:.2f}", money.format(p["realized_pnl"]), money.format(p["unrealized_pnl"]),
                          money.format(p["fees"]).lstrip("+"), p.get("pnl_unit", ""))
    console.print(positions)
    pnl = summary["pnl"]
    if pnl["total"] is None:  # several settlement currencies: a total per currency, never one sum
        for currency, row in pnl["by_currency"].items():
            console.print(f"PnL {currency} {row['pnl']:+,.8g} (realized {row['realized_pnl']:+,.8g}, unrealized "
                          f"{row['unrealized_pnl']:+,.8g}, fees {row['fees']:,.8g}; {', '.join(row['symbols'])})")
    else:
        console.print(f"PnL total {pnl['total']:+,.2f} {pnl.get('unit', '')} (realized {pnl['realized']:+,.2f}, "
                      f"unrealized {pnl['unrealized']:+,.2f}, fees {pnl['fees']:,.2f})")
    latency = Table(title="latency per hop (us)")
    for column in ("hop", "count", "p50", "p99", "p99.9", "max"):
        latency.add_column(column, justify="right")
    for name, h in summary["latency"].items():
        latency.add_row(name, f"{h.get('count', 0):,}", *(f"{h.get(k, float('nan')) / 1e3:.1f}"
                                                          for k in ("p50_ns", "p99_ns", "p999_ns", "max_ns")))
    console.print(latency)
    after = summary.get("workers_after_drain", {})
    workers = ", ".join(f"{name} {after.get(name, w['state'])}" + (f" ({w['restarts']} restarts)" if w["restarts"] else "")
                        for name, w in summary["workers"].items())
    console.print(f"workers: {workers}")
