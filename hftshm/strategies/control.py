"""Driving a running platform's strategies: pause, resume, remove, hot add (CLI and web API).

Each operation writes one ``control_message`` into the strategy worker's control ring
(``control.<worker>``, found through the run manifest). The ring has one producer at a time, so a
writer holds ``<run_dir>/<ring>.lock`` (flock) while writing. A hot add carries more than a record
holds (class, symbol, parameters): its request goes as JSON to ``<run_dir>/strategies/requests/<n>.json``
and the message carries ``n``; the worker answers in ``<n>.result.json``.

    from hftshm.runtime.manifest import read_running
    manifest = read_running("run")
    strategy_id = add_strategy(manifest, "mm2", "market_maker", "BTCUSDT", {"spread_bps": 3})
    pause_strategy(manifest, "mm2")
"""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hftshm.codes import ControlKind


class ControlError(RuntimeError):
    """The request could not be delivered or the worker refused it; the message says which."""


def _ring_entry(manifest, ring_name: str):
    entry = next((r for r in manifest.rings if r.name == ring_name), None)
    if entry is None:
        names = ", ".join(r.name for r in manifest.rings if r.layout == "control_message") or "(none)"
        raise ControlError(f"the running platform has no control ring {ring_name!r}; control rings: {names}")
    return entry


def send_control(manifest, kind: int, target_id: int, value_i: int = 0, worker: str = "strategies",
                 ring_name: str | None = None, timeout_s: float = 2.0) -> None:
    """Write one ``control_message`` into the worker's control ring, under the writers' lock."""
    from hftshm.transport.ring import Ring

    ring_name = ring_name or f"control.{worker}"
    entry = _ring_entry(manifest, ring_name)
    with open(Path(manifest.run_dir) / f"{ring_name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ring = Ring.attach(entry.segment, "control_message")
        try:
            record = {"seq": time.time_ns(), "ts_ns": time.time_ns(), "target_id": int(target_id),
                      "value_i": int(value_i), "kind": int(kind)}
            if not ring.write(record, timeout_s=timeout_s):
                raise ControlError(f"control ring {ring_name} stayed full for {timeout_s:g} s: is the {worker} "
                                   f"worker running?")
        finally:
            ring.close()
            fcntl.flock(lock, fcntl.LOCK_UN)


def status(manifest, worker: str = "strategies") -> list[dict[str, Any]]:
    """The worker's ``strategy_status`` rows (live metrics), [] if it has not started one."""
    from hftshm.strategies.runtime import STATUS_LAYOUT, status_rows
    from hftshm.strategies.worker import status_segment_name
    from hftshm.transport.segment import Segment, SegmentNotFound

    try:
        segment = Segment.attach(status_segment_name(manifest.prefix, worker))
    except SegmentNotFound:
        return []
    try:
        table = np.ndarray((segment.size // STATUS_LAYOUT.itemsize,), dtype=STATUS_LAYOUT.dtype, buffer=segment.buf)
        copy = table.copy()
        del table
    finally:
        segment.close()
    return status_rows(copy)


def find(manifest, name_or_id: str | int, worker: str = "strategies") -> dict[str, Any]:
    rows = status(manifest, worker)
    for row in rows:
        if row["state"] != "removed" and (row["name"] == str(name_or_id) or str(row["strategy_id"]) == str(name_or_id)):
            return row
    running = ", ".join(r["name"] for r in rows if r["state"] != "removed") or "(none)"
    raise ControlError(f"no strategy {name_or_id!r} on worker {worker}; running: {running}")


def _act(manifest, name_or_id, kind: ControlKind, states: tuple[str, ...], worker: str, ring_name, wait_s: float):
    row = find(manifest, name_or_id, worker)
    send_control(manifest, kind, row["strategy_id"], 0, worker, ring_name)
    deadline = time.monotonic() + wait_s
    while True:
        now = {r["strategy_id"]: r for r in status(manifest, worker)}.get(row["strategy_id"], {}).get("state")
        if now in states:
            return now
        if time.monotonic() > deadline:
            raise ControlError(f"{row['name']}: sent {kind.name.lower()}, but the worker shows {now!r} after "
                               f"{wait_s:g} s")
        time.sleep(0.05)


def pause_strategy(manifest, name_or_id, worker: str = "strategies", ring_name: str | None = None,
                   wait_s: float = 5.0) -> str:
    """Pause (its resting orders are cancelled; reports keep updating its position)."""
    return _act(manifest, name_or_id, ControlKind.STRATEGY_PAUSE, ("paused",), worker, ring_name, wait_s)


def resume_strategy(manifest, name_or_id, worker: str = "strategies", ring_name: str | None = None,
                    wait_s: float = 5.0) -> str:
    return _act(manifest, name_or_id, ControlKind.STRATEGY_RESUME, ("running",), worker, ring_name, wait_s)


def remove_strategy(manifest, name_or_id, worker: str = "strategies", ring_name: str | None = None,
                    wait_s: float = 5.0) -> str:
    return _act(manifest, name_or_id, ControlKind.STRATEGY_REMOVE, ("removed",), worker, ring_name, wait_s)


COMPILED_ADD_WAIT_S = 600.0


def add_strategy(manifest, name: str, spec: str, symbol: str, params: dict[str, Any], paused: bool = False,
                 worker: str = "strategies", ring_name: str | None = None, wait_s: float = 5.0) -> int:
    """Start a strategy on the running worker; its strategy id. Parameters are checked here first."""
    from hftshm.strategies.base import StrategyError, resolve_params
    from hftshm.strategies.registry import load_class
    from hftshm.strategies.worker import requests_dir

    from hftshm.strategies.compiled import CompiledStrategy

    try:
        cls = load_class(spec)
        resolved = resolve_params(name, cls.PARAMS, params, None)  # the worker fills in its market's sizes
    except (LookupError, StrategyError) as exc:
        raise ControlError(str(exc)) from None
    if issubclass(cls, CompiledStrategy):
        # the worker compiles it in another process first (minutes with an empty numba cache)
        wait_s = max(wait_s, COMPILED_ADD_WAIT_S)
    request_id = time.time_ns() // 1000
    folder = requests_dir(manifest.run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    request = folder / f"{request_id}.json"
    request.write_text(json.dumps({"name": name, "class": spec, "symbol": symbol.upper(), "params": resolved,
                                   "paused": paused}))
    result_path = folder / f"{request_id}.result.json"
    try:
        send_control(manifest, ControlKind.STRATEGY_ADD, -1, request_id, worker, ring_name)
        deadline = time.monotonic() + wait_s
        while not result_path.exists():
            if time.monotonic() > deadline:
                raise ControlError(f"sent add for {name}, but the {worker} worker did not answer within {wait_s:g} s")
            time.sleep(0.05)
        result = json.loads(result_path.read_text())
    finally:
        request.unlink(missing_ok=True)
        result_path.unlink(missing_ok=True)
    if not result.get("ok"):
        raise ControlError(f"{name} was not added: {result.get('error')}")
    return int(result["strategy_id"])
