"""Benchmark: the real day through the full pipeline, on shared-memory rings and on pyzmq.

Each variant runs the configured topology under a supervisor (no web server) in one of two modes:

- ``flood``: speed 0, the whole day as fast as the pipeline takes it, from the feed's start until
  it has finished and every ring is empty. Throughput; tick-to-order is mostly queueing behind the
  backlog the feed builds.
- ``paced``: the day replayed at ``--speed`` (market time / wall time) for ``--duration`` seconds:
  the latency a tick sees when the pipeline keeps up.

Reported per variant: events per second (wall) and per CPU-second of the worker processes,
tick-to-order (feed publish -> the OMS publishes the order to the exchange) p50/p99/p99.9, and the
per-hop histograms that split it:

    strategies.book_age        feed publish -> the strategies poll the book   (queueing, wake-up)
    strategies.tick_to_intent  feed publish -> intent published to risk        (+ the strategies)
    risk.hop                   intent published -> order published to the OMS
    oms.hop                    upstream publish -> the OMS publishes (orders and reports)
    exchange.hop               OMS publish -> the exchange takes the order
    feed.recv_to_publish       when an event was due (paced) or staged (flood) -> published

Variants: placement composite and process-per-worker, on shm rings and on ZeroMQ
(``hftshm.runtime.zmq_bridge``), so the ratios are measured in one run on one machine.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import typer

from hftshm.config import DEFAULT_CONFIG

# the histograms that split tick-to-order, in path order (others are reported after them)
HOPS = ("strategies.book_age", "strategies.tick_to_intent", "risk.hop", "oms.hop", "exchange.hop",
        "feed.recv_to_publish")


def register(bench_app: typer.Typer) -> None:
    bench_app.command("pipeline")(pipeline_command)


def pipeline_command(
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="platform config (its topology and data)"),
    placements: str = typer.Option("composite,process-per-worker", help="comma-separated placements to run"),
    transports: str = typer.Option("shm,zmq", help="comma-separated transports: shm, zmq"),
    modes: str = typer.Option("flood,paced", help="comma-separated modes: flood (speed 0), paced (--speed)"),
    speed: float = typer.Option(None, help="paced mode: one replay speed (1 = real time); default: --speeds"),
    speeds: str = typer.Option("10,1", help="paced mode: comma-separated replay speeds"),
    duration: float = typer.Option(20.0, help="paced mode: seconds of wall time per variant"),
    waits: str = typer.Option("", help="comma-separated wait strategies for the trading workers (busy-spin, "
                                       "spin-yield, spin-park, default: the config's); default: the config's"),
    cycles: str = typer.Option("compiled", help="comma-separated: compiled (the compiled trading cycle where it "
                                                "ships: paced runs), compiled-flood (floods on it too), python "
                                                "(the Python duty cycle, for comparison)"),
    json_path: Path = typer.Option(None, "--json", help="write {\"results\": [...]} here"),
) -> None:
    """Real data through feed -> strategies -> risk -> oms -> exchange, hftshm rings vs pyzmq,
    flooded (speed 0) and paced, with tick-to-order, its per-hop breakdown and CPU per process."""
    from hftshm.bench.report import emit

    paced_speeds = [float(speed)] if speed is not None else [float(x) for x in _split(speeds)]
    # "default": the config's own wait strategies (the shipped composite), in the same run as the others
    wait_names = [None if w == "default" else w for w in _split(waits)] or [None]
    for cycle in _split(cycles):
        if cycle not in ("compiled", "compiled-flood", "python"):
            raise typer.BadParameter(f"cycle {cycle!r}; allowed: compiled, compiled-flood, python",
                                     param_hint="--cycles")
    results, hops = [], []
    for mode in _split(modes):
        if mode not in ("flood", "paced"):
            raise typer.BadParameter(f"mode {mode!r}; allowed: flood, paced", param_hint="--modes")
        for mode_speed in (paced_speeds if mode == "paced" else [0.0]):
            for wait in wait_names:
                for cycle in _split(cycles):
                    for transport in _split(transports):
                        if transport == "zmq" and (cycle != "compiled" or wait is not None):
                            continue  # the comparison transport: once per mode and speed
                        for placement in _split(placements):
                            row, hop_rows = run_variant(config, placement, transport, mode, mode_speed, duration,
                                                        wait=wait, cycle=cycle)
                            results.append(row)
                            hops += hop_rows
    notes = ratio_notes(results) + cpu_notes(results)
    emit("pipeline: real day end to end, tick-to-order and its hops (latencies in ns)", results + hops,
         json_path, notes, width=180,
         columns=["name", "events", "ops_per_s", "ops_per_cpu_s", "cpu", "count", "p50_ns", "p99_ns", "p999_ns"])


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def variant_name(transport: str, placement: str, mode: str, speed: float = 10.0, wait: str | None = None,
                 cycle: str = "compiled") -> str:
    """The entry's name: ``pipeline-hftshm/composite/paced`` for speed 10 (names kept stable), a
    ``-speed<N>`` suffix on the mode for other speeds, then ``/wait-<name>`` and ``/python-cycle``
    for variants that are not the config's wait strategy or the compiled cycle."""
    base = "pipeline-hftshm" if transport == "shm" else "pipeline-zmq"
    label = mode if mode == "flood" or speed == 10.0 else f"{mode}-speed{speed:g}"
    name = f"{base}/{placement}/{label}"
    if wait:
        name += f"/wait-{wait}"
    if cycle != "compiled":
        name += f"/{cycle}-cycle"
    return name


def cpu_notes(results: list[dict]) -> list[str]:
    """CPU per process beside tick-to-order, one line per variant."""
    notes = []
    for r in results:
        if r.get("cpu"):
            notes.append(f"{r['name']}: tick-to-order p50 {r['p50_ns'] / 1e3:.1f} us, p99 {r['p99_ns'] / 1e3:.1f} us; "
                         f"CPU {r['cpu']}" + (f"; {r['cycle_summary']}" if r.get("cycle_summary") else ""))
    return notes


def ratio_notes(results: list[dict]) -> list[str]:
    """hftshm versus zmq for each placement and mode measured on both."""
    notes = []
    by_key = {(r["transport"], r["placement"], r["mode"], r["speed"]): r for r in results
              if not r.get("wait") and r.get("cycle", "compiled") == "compiled"}
    for (transport, placement, mode, speed), shm in sorted(by_key.items()):
        zmq = by_key.get(("zmq", placement, mode, speed))
        if transport != "shm" or zmq is None:
            continue
        parts = []
        if mode == "flood" and zmq["ops_per_s"]:
            parts.append(f"throughput hftshm / zmq {shm['ops_per_s'] / zmq['ops_per_s']:.1f}x")
        for q in ("p50", "p99", "p999"):
            a, b = shm[f"{q}_ns"], zmq[f"{q}_ns"]
            if a == a and b == b and a > 0:
                parts.append(f"tick-to-order {q} zmq / hftshm {b / a:.1f}x")
        label = mode if mode == "flood" else f"{mode} speed {speed:g}"
        notes.append(f"{placement} {label}: " + ", ".join(parts))
    return notes


def run_variant(config_path: Path, placement: str, transport: str, mode: str = "flood", speed: float = 10.0,
                duration_s: float = 20.0, wait: str | None = None, cycle: str = "compiled") -> tuple[dict, list[dict]]:
    from hftshm.metrics.histogram import summarize
    from hftshm.platform import PlatformConfig
    from hftshm.runtime import scheduling
    from hftshm.runtime import status as st
    from hftshm.runtime.platform_run import TICK_TO_ORDER
    from hftshm.codes import WorkerState
    from hftshm.runtime.supervisor import Supervisor

    import os

    from hftshm.runtime.trading_cycle import ENV_SWITCH

    replay_speed = 0.0 if mode == "flood" else float(speed)
    name = variant_name(transport, placement, mode, replay_speed if mode == "paced" else 10.0, wait, cycle)
    before = os.environ.get(ENV_SWITCH)
    # the worker processes inherit it; "compiled-flood" runs a flood on the compiled cycle too
    os.environ[ENV_SWITCH] = {"compiled": "1", "compiled-flood": "all"}.get(cycle, "0")
    with tempfile.TemporaryDirectory(prefix="hftshm-bench-") as tmp:
        overrides = {"feed": {"speed": replay_speed}, "platform": {"placement": placement, "run_dir": tmp}}
        if wait:
            overrides["workers"] = {w: {"wait": wait} for w in ("strategies", "risk", "oms", "exchange")}
        config = PlatformConfig.load(config_path, overrides)
        with Supervisor(config.topology, config, transport=transport) as sup:
            sup.start()
            policy = scheduling.as_batch_task()  # our own polling must not preempt the pinned workers
            feed = sup.manifest.worker("feed")
            started_ns = int(sup.status.words[feed.row, st.STARTED_NS])
            _mark_cpu(sup)
            marked_ns = time.monotonic_ns()
            limit_s = 600.0 if mode == "flood" else duration_s
            deadline = time.monotonic() + limit_s
            feed_done_ns = 0  # when the feed had published everything (the rest is the pipeline's drain)
            busy: dict[str, int] = {}  # rings still holding records once the feed was done, polls seen
            while not sup.finished() and time.monotonic() < deadline:
                sup.poll()
                if not feed_done_ns and sup.worker_states().get("feed") == WorkerState.FINISHED:
                    feed_done_ns = time.monotonic_ns()
                if feed_done_ns:
                    for ring_name, ring in sup.rings.items():
                        if ring.occupancy():
                            busy[ring_name] = busy.get(ring_name, 0) + 1
                time.sleep(0.002)
            finished_ns = time.monotonic_ns()
            published = int(sup.status.counters(feed.row)[feed.counter_names.index("events_published")])
            histograms = sup.metrics.snapshot() if sup.metrics else {}
            cpu_s = _cpu_seconds(sup)
            per_process = _cpu_by_process(sup)
            scheduling.restore(policy)
            sup.shutdown()
            cycle_line = _compiled_cycle_line(Path(tmp) / "logs")
    if before is None:
        os.environ.pop(ENV_SWITCH, None)
    else:
        os.environ[ENV_SWITCH] = before
    elapsed_s = (finished_ns - started_ns) / 1e9
    wall_s = max((finished_ns - marked_ns) / 1e9, 1e-9)  # the CPU figures' window
    headline = summarize(histograms[TICK_TO_ORDER]) if TICK_TO_ORDER in histograms else None
    row = {"name": name, "transport": transport, "placement": placement, "mode": mode, "speed": replay_speed,
           "events": published, "seconds": round(elapsed_s, 3),
           "ops_per_s": published / elapsed_s if elapsed_s > 0 else 0.0,
           "ops_per_cpu_s": published / cpu_s if cpu_s > 0 else 0.0, "cpu_s": round(cpu_s, 2),
           "count": headline.count if headline else 0,
           "p50_ns": headline.p50_ns if headline else float("nan"),
           "p99_ns": headline.p99_ns if headline else float("nan"),
           "p999_ns": headline.p999_ns if headline else float("nan"),
           "wait": wait or "", "cycle": cycle, "cycle_summary": cycle_line,
           "drain_s": round((finished_ns - feed_done_ns) / 1e9, 3) if feed_done_ns else None,
           "draining_rings": ", ".join(f"{k} {v}" for k, v in sorted(busy.items(), key=lambda kv: -kv[1])[:4]),
           # CPU per process over the measured wall time, % of one core (start-up excluded)
           "cpu": ", ".join(f"{p} {100 * (s1 - s0) / wall_s:.0f}%" for p, (s0, s1) in per_process.items())}
    for process, (s0, s1) in per_process.items():
        row[f"cpu_pct_{process}"] = round(100 * (s1 - s0) / wall_s, 1)
    hop_rows = []
    ordered = [h for h in HOPS if h in histograms] + sorted(h for h in histograms if h not in HOPS)
    for hop in ordered:
        figures = summarize(histograms[hop])
        if figures.count and hop != TICK_TO_ORDER:
            hop_rows.append({"name": f"{name}/{hop}", "transport": transport, "placement": placement, "mode": mode,
                             "speed": replay_speed, "count": figures.count, "p50_ns": figures.p50_ns,
                             "p99_ns": figures.p99_ns, "p999_ns": figures.p999_ns})
    return row, hop_rows


def _compiled_cycle_line(logs: Path) -> str:
    """The trading process's own account of its compiled cycle (slices, passes, time in and between
    slices, Python rounds), from its log: "" when it ran the Python duty cycle."""
    for log_file in sorted(logs.glob("*.log")):
        for line in log_file.read_text(errors="replace").splitlines():
            if "compiled cycle:" in line:
                return line.split("compiled cycle:", 1)[1].strip()
    return ""


def _cpu_by_process(sup) -> dict[str, tuple[float, float]]:
    """{process: (CPU seconds when the run started, now)}: ``_mark_cpu`` took the first figure once
    every process was up, so start-up (compiling, warming) is not counted."""
    import psutil

    found = {}
    marks = getattr(sup, "_bench_cpu_marks", {})
    for name, handle in sup.handles.items():
        if handle.process is None or not handle.process.is_alive():
            continue
        try:
            times = psutil.Process(handle.process.pid).cpu_times()
        except psutil.Error:
            continue
        found[name] = (marks.get(name, 0.0), times.user + times.system)
    return found


def _mark_cpu(sup) -> None:
    """CPU seconds of every worker process now (after start-up compiles), for ``_cpu_by_process``."""
    import psutil

    marks = {}
    for name, handle in sup.handles.items():
        if handle.process is None or not handle.process.is_alive():
            continue
        try:
            times = psutil.Process(handle.process.pid).cpu_times()
        except psutil.Error:
            continue
        marks[name] = times.user + times.system
    sup._bench_cpu_marks = marks


def _cpu_seconds(sup) -> float:
    """User + system CPU time of every worker process so far (their children included)."""
    import psutil

    total = 0.0
    for handle in sup.handles.values():
        if handle.process is None or not handle.process.is_alive():
            continue
        try:
            times = psutil.Process(handle.process.pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total
