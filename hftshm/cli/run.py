"""CLI: ``hftshm run`` and the commands that talk to a running platform (status, stop, worker, logs)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import typer

from hftshm.config import DEFAULT_CONFIG, ConfigError


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("status")(status_command)
    app.command("stop")(stop_command)
    app.command("worker")(worker_command)
    app.command("logs")(logs_command)


ConfigOption = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="platform config file")


def _load(config_path: Path, overrides: dict | None = None):
    from hftshm.platform import PlatformConfig

    try:
        return PlatformConfig.load(config_path, overrides)
    except (ConfigError, ValueError, KeyError) as exc:
        typer.secho(f"config error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def _check_tuning_environment() -> None:
    """The tuning switches the workers read (``HFTSHM_KEEP_WARM_US``, ``HFTSHM_REHEARSE_US``), checked
    before anything starts: a bad value would otherwise stop the trading process at its start, after
    the others are up."""
    from hftshm.runtime.rehearsal import rehearse_ns
    from hftshm.runtime.keep_warm import warm_ns

    try:
        warm_ns()
        rehearse_ns()
    except ValueError as exc:
        typer.secho(f"environment error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def run_command(
    config: Path = ConfigOption,
    speed: float = typer.Option(None, help="replay speed: 1 = real time, N = N times faster, 0 = as fast as possible"),
    duration: float = typer.Option(None, help="stop after this many seconds of running"),
    serve: bool = typer.Option(False, "--serve", help="keep the web server up after the data ends (Ctrl-C to stop)"),
    placement: str = typer.Option(None, help="composite (few cores) or process-per-worker"),
    port: int = typer.Option(None, help="web server port (default [web] port)"),
    no_web: bool = typer.Option(False, "--no-web", help="do not start the web server"),
    external: list[str] = typer.Option([], "--external", help="leave this worker to 'hftshm worker NAME'"),
    quiet: bool = typer.Option(False, "--quiet", help="no live status line"),
    deterministic: bool = typer.Option(False, "--deterministic",
                                       help="lockstep replay (speed 0 unless --speed): fills equal 'hftshm backtest'"),
    live: bool = typer.Option(False, "--live", help="live Binance streams instead of the data ([feed] source = "
                              "\"binance\", live_symbols, ws_url, rest_url): paper trading"),
    record: Path = typer.Option(None, "--record", help="with --live: also write the raw stream to this directory"),
    recover_from_journal: str = typer.Option(None, "--recover-from-journal", metavar="NAMESPACE",
                                             help="start risk and the strategies from the positions of the platform "
                                             "exporting order events under this \\[bridge] namespace"),
    data: list[Path] = typer.Option([], "--data", "-d", help="replay these canonical tick CSVs instead of [feed] data "
                                    "(repeatable: several files, e.g. several symbols, merged by exchange time)"),
) -> None:
    """Run the whole pipeline on the configured data: feed, strategies, risk, OMS, exchange, web.

    Replays data/ (real BTCUSDT) or --data files through the strategies enabled in config (each on its
    symbol), shows a live status line, and prints a summary (per strategy and per symbol) when the
    data ends. Ctrl-C or 'hftshm stop' drains and exits cleanly.
    """
    from hftshm.runtime.platform_run import PlatformRun, RunOptions

    overrides: dict = {}
    if speed is not None:
        overrides.setdefault("feed", {})["speed"] = speed
    if placement is not None:
        overrides.setdefault("platform", {})["placement"] = placement
    if deterministic:
        overrides.setdefault("platform", {})["deterministic"] = True
        if speed is None:
            overrides.setdefault("feed", {})["speed"] = 0.0
    if port is not None:
        overrides.setdefault("web", {})["port"] = port
    if recover_from_journal:
        overrides.setdefault("bridge", {})["recover_from"] = recover_from_journal
    if live:  # the live feed worker (hftshm.feed.live_worker) in the feed's place
        overrides.setdefault("feed", {})["source"] = "binance"
        overrides.setdefault("workers", {}).setdefault("feed", {})["class"] = "hftshm.feed.live_worker:LiveFeedWorker"
    if record is not None:
        if not live:
            typer.secho("--record needs --live (a replay's data is already recorded)", fg="red", err=True)
            raise typer.Exit(2)
        overrides.setdefault("feed", {})["record"] = str(record)
    if data:
        if live:
            typer.secho("--data replays files; --live takes the streams of [feed] live_symbols", fg="red", err=True)
            raise typer.Exit(2)
        overrides.setdefault("feed", {})["data"] = [str(p.resolve()) if p.exists() else str(p) for p in data]
    for name in external:
        overrides.setdefault("workers", {}).setdefault(name, {})["external"] = True
    cfg = _load(config, overrides)
    _check_tuning_environment()
    for notice in cfg.notices:
        typer.secho(f"warning: {notice}", fg="yellow", err=True)
    options = RunOptions(duration_s=duration, serve=serve, web=not no_web, live=not quiet and sys.stdout.isatty())
    _warm_kernels(cfg, options)
    code = PlatformRun(cfg, options).run()
    raise typer.Exit(code)


def _warm_kernels(cfg, options) -> None:
    """On a cold numba cache, compile the workers' kernels in parallel processes (one progress line)
    before any worker starts: each worker then loads them in its ``on_start`` instead of compiling
    them one after another while the first tick waits. A configuration that cannot run is
    reported first (PlatformRun checks it again), not after the compilation."""
    from hftshm.runtime.compile_cache import begin_warm, cold_kernels, load_manifest, record_process_if_asked
    from hftshm.runtime.platform_run import PreflightError, preflight

    record_process_if_asked()  # `compile_cache record run`: the supervisor's own kernels too
    manifest = load_manifest()
    if not cold_kernels("run", manifest):
        return
    try:
        preflight(cfg, options.web)
    except (PreflightError, ConfigError):
        return  # PlatformRun reports it, with nothing started
    typer.secho("first run: compiling the kernels; later runs load them from the cache", fg="yellow", err=True)
    warming = begin_warm("run")
    if warming is not None:
        # the parse kernels come from the pool, which compiles them last, where a process of it is
        # free: compiling them here too would take a core from two busy pool processes
        warming.wait_parse()
        _parse_replay_data(cfg)
        warming.wait()


def _parse_replay_data(cfg) -> None:
    """Build the replayed files' event caches here, while the pool compiles the workers' kernels (the
    feed worker then maps them instead of parsing before its first tick). Any problem is left for
    the feed to report, as it would without this."""
    if cfg.feed.source != "replay":
        return
    from hftshm.feed import cache as event_cache

    try:
        for path in cfg.feed.data_paths():
            event_cache.load(path, cfg.symbols, strict=cfg.feed.strict)
    except Exception:  # noqa: BLE001 - the feed parses it again and says what is wrong
        pass


def _manifest(run_dir: Path | None, config: Path):
    from hftshm.runtime.manifest import NoRunningPlatform, read_running

    if run_dir is None:
        run_dir = _load(config).platform.run_dir
    try:
        return read_running(run_dir)
    except NoRunningPlatform as exc:
        typer.secho(str(exc), fg="yellow", err=True)
        raise typer.Exit(1) from None


RunDirOption = typer.Option(None, "--run-dir", help="run directory of the platform (default [platform] run_dir)")


def status_command(run_dir: Path = RunDirOption, config: Path = ConfigOption) -> None:
    """Attach to a running platform and print its workers, rings (occupancy, drops) and counters."""
    from rich.console import Console
    from rich.table import Table

    from hftshm.runtime import inspect
    from hftshm.runtime import status as st

    manifest = _manifest(run_dir, config)
    status = st.StatusTable.attach(manifest.status_segment, len(manifest.workers))
    rings = inspect.attach_rings(manifest)
    try:
        console = Console()
        workers = Table(title=f"workers (supervisor pid {manifest.supervisor_pid})")
        for column in ("worker", "process", "pid", "cpu", "state", "heartbeat", "work", "restarts"):
            workers.add_column(column)
        views = inspect.worker_views(manifest, status)
        for w in views:
            workers.add_row(w.name, w.process, str(w.pid), str(w.cpu), w.state, f"{w.heartbeat_age_s:.2f}s ago",
                            f"{w.work_count:,}", str(w.restarts))
        console.print(workers)
        for w in views:
            nonzero = ", ".join(f"{k}={v:,}" for k, v in w.counters.items() if v)
            console.print(f"[bold]{w.name}[/bold]: {nonzero or '(all counters zero)'}")
        table = Table(title="rings")
        for column in ("ring", "layout", "from -> to", "occupancy", "full", "drops", "backpressure"):
            table.add_column(column)
        for r in inspect.ring_views(manifest, rings):
            table.add_row(r.name, r.layout, f"{r.producer} -> {r.consumer}", f"{r.occupancy}/{r.capacity}",
                          str(r.full_events), str(r.drops), r.backpressure)
        console.print(table)
    finally:
        for ring in rings.values():
            ring.close()
        status.close()


def stop_command(run_dir: Path = RunDirOption, config: Path = ConfigOption,
                 timeout: float = typer.Option(60.0, help="seconds to wait for a clean exit")) -> None:
    """Stop a running platform gracefully: producers stop, consumers drain, segments are removed."""
    manifest = _manifest(run_dir, config)
    os.kill(manifest.supervisor_pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(manifest.supervisor_pid):
            typer.echo(f"stopped (supervisor pid {manifest.supervisor_pid})")
            return
        time.sleep(0.1)
    typer.secho(f"supervisor pid {manifest.supervisor_pid} still running after {timeout:.0f} s", fg="red", err=True)
    raise typer.Exit(1)


def _running(pid: int) -> bool:
    """A zombie (exited, not yet reaped by the parent that started it) has stopped too."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def worker_command(name: str = typer.Argument(..., help="worker name from [workers]"),
                   run_dir: Path = RunDirOption, config: Path = ConfigOption) -> None:
    """Run one worker in this terminal, attached to a running platform's rings.

    Start the platform with 'hftshm run --external NAME' (or external = true in [workers.NAME]) so the
    supervisor leaves that worker to you. Ctrl-C drains it and exits.
    """
    from hftshm.runtime.manifest import ProcessEntry
    from hftshm.runtime.process import run_process
    from hftshm.runtime import status as st

    manifest = _manifest(run_dir, config)
    try:
        entry = manifest.worker(name)
    except KeyError as exc:
        typer.secho(str(exc.args[0]), fg="red", err=True)
        raise typer.Exit(2) from None
    if entry.process:
        typer.secho(f"worker {name!r} is run by the supervisor (process {entry.process!r}); start the platform "
                    f"with 'hftshm run --external {name}' to run it here", fg="red", err=True)
        raise typer.Exit(2)
    process_name = f"external.{name}"
    manifest.processes.append(ProcessEntry(process_name, [name], -1, "spin-park", os.getpid()))
    status = st.StatusTable.attach(manifest.status_segment, len(manifest.workers))

    def on_sigint(signum, frame):
        status.words[entry.row, st.COMMAND] = 1  # WorkerCommand.DRAIN

    code = run_process(manifest, process_name, sigint_handler=on_sigint)
    status.close()
    raise typer.Exit(code)


def logs_command(worker: str = typer.Argument(None, help="one worker (default: all)"),
                 follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines"),
                 lines: int = typer.Option(50, "--lines", "-n", help="lines to show from the end of each log"),
                 run_dir: Path = RunDirOption, config: Path = ConfigOption) -> None:
    """Show worker logs from the run directory (one file per worker)."""
    from hftshm.runtime.logs import logs_dir

    if run_dir is None:
        run_dir = _load(config).platform.run_dir
    directory = logs_dir(run_dir)
    files = sorted(directory.glob(f"{worker}.log" if worker else "*.log"))
    if not files:
        typer.secho(f"no logs{' for ' + worker if worker else ''} under {directory}", fg="yellow", err=True)
        raise typer.Exit(1)
    handles = []
    for path in files:
        text = path.read_text(errors="replace").splitlines()
        for line in text[-lines:]:
            typer.echo(line if worker else f"{path.stem}: {line}")
        handle = path.open(errors="replace")
        handle.seek(0, os.SEEK_END)
        handles.append((path, handle))
    while follow:
        time.sleep(0.25)
        for path, handle in handles:
            for line in handle.readlines():
                typer.echo(line.rstrip("\n") if worker else f"{path.stem}: {line.rstrip()}")
