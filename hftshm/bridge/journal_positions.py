"""A platform that starts from another platform's positions, rebuilt from its order-event journal.

A trading host exports its order events to JetStream (``export = "nats:"`` on ``oms.events``). A
second platform started with ``[bridge] recover_from = "<namespace>"`` (``hftshm run
--recover-from-journal NAMESPACE``) books that journal's fills into its risk state and its
strategies' portfolios before it trades, as a worker restarted within a run rebuilds from its own
OMS database (``hftshm.risk.restart``, ``hftshm.strategies.restart``): the same fold
(``risk.replay_nb.fold_fills``, ``strategies.restart.rebuild_portfolio``) over the same record shape
(``oms.record.RunRecord``), only read from the journal instead of the database.

What is taken: the fills of the exporting platform's latest run retained in the stream (the epoch of
its newest batch), in event order. What is not: its open orders (they rest on its exchange, not on
this platform's; a restart across runs does not restore them either), and its throttles and counters.

The journal is read once per run, at the first worker that asks, under a file lock, into
``<run_dir>/bridge/recovered_fills.npy``; the other workers (and restarts) read that file, so risk
and the strategies book exactly the same fills even if the exporter is still adding to its journal.
Only start-up reads NATS here; the hot path never does.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
from pathlib import Path

import numpy as np

from hftshm.codes import OrderEventKind
from hftshm.oms.record import FILL_DTYPE, ORDER_DTYPE, RunRecord

_FILL_KINDS = np.array([int(OrderEventKind.PARTIAL), int(OrderEventKind.FILL)])
_SOURCE = {"price": "exec_price", "qty": "exec_qty"}  # fill column <- order_event field (as the OMS store)


def fills_of(events: np.ndarray) -> np.ndarray:
    """The fills among ``order_event`` records, as ``RunRecord.fills`` rows, in event order."""
    chosen = events[np.isin(events["kind"], _FILL_KINDS)]
    chosen = chosen[np.argsort(chosen["event_id"], kind="stable")]
    fills = np.zeros(len(chosen), dtype=FILL_DTYPE)
    for name in FILL_DTYPE.names:
        fills[name] = chosen[_SOURCE.get(name, name)]
    return fills


def read_journal_fills(bridge, namespace: str) -> tuple[np.ndarray, int]:
    """(fills, epoch) of the latest run exporting ``hftshm.<namespace>.oms.events`` that JetStream retains."""
    from hftshm.bridge.journal import read_journal
    from hftshm.transport import layout as layouts

    config = dataclasses.replace(bridge, namespace=namespace)
    batches = list(read_journal(config, config.subject("oms.events"), layouts.load("order_event")))
    if not batches:
        return np.zeros(0, dtype=FILL_DTYPE), 0
    epoch = batches[-1].epoch
    events = np.concatenate([b.records for b in batches if b.epoch == epoch])
    _, first = np.unique(events["event_id"], return_index=True)  # a redelivered batch: once each
    return fills_of(events[np.sort(first)]), epoch


def recovered_record(ctx) -> RunRecord | None:
    """The record to start from when ``[bridge] recover_from`` is set (None when not); read from
    the journal by the first caller of the run, from its file by the others."""
    from hftshm.bridge import config as bridge_config

    bridge = bridge_config.of(ctx.config)
    namespace = getattr(bridge, "recover_from", "")
    if not namespace:
        return None
    path = Path(ctx.run_dir) / "bridge" / "recovered_fills.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _current(path, ctx.run_dir):
            fills = np.load(path)
        else:
            fills, epoch = read_journal_fills(bridge, namespace)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, fills)
            os.replace(tmp, path)
            path.with_suffix(".run").write_text(str(_run(ctx.run_dir)))
            ctx.log.info("recover: %d fills of run %d read from the journal hftshm.%s.oms.events", len(fills),
                         epoch, namespace)
    return RunRecord(fills, np.zeros(0, dtype=ORDER_DTYPE))


def _run(run_dir) -> int:
    from hftshm.bridge.config import run_identity

    return run_identity(run_dir)


def _current(path: Path, run_dir) -> bool:
    """Whether ``path`` was written in this run (an earlier run's file is read again)."""
    try:
        return path.exists() and int(path.with_suffix(".run").read_text()) == _run(run_dir)
    except (OSError, ValueError):
        return False


def rebuild_risk(ctx, state, control) -> None:
    """Book the recovered fills into a fresh risk state (positions, realized PnL, fees)."""
    record = recovered_record(ctx)
    if record is None:
        return
    from hftshm.risk import replay_nb
    from hftshm.risk.state_nb import refresh_symbol_pnl_all, refresh_totals_and_loss

    f = record.fills
    booked = replay_nb.fold_fills(state.symbols, f["symbol_id"], f["side"], f["qty"], f["price"], f["fee"])
    refresh_symbol_pnl_all(state.symbols)
    refresh_totals_and_loss(state.symbols, state.account, control.words)
    ctx.log.info("recover: risk booked %d fills from the journal; positions %s", int(booked),
                 {p["symbol"]: p["position"] for p in state.positions()})


def rebuild_strategies(ctx, host) -> None:
    """Book each strategy's recovered fills into its fresh portfolio (by strategy id), then let it
    rebuild its own bookkeeping (``Strategy.on_restart``)."""
    record = recovered_record(ctx)
    if record is None:
        return
    from hftshm.strategies.restart import rebuild_portfolio

    notes = {}
    empty = np.zeros(0, dtype=[("strategy_id", "i8")])
    for slot in host.slots.values():
        notes[slot.name] = rebuild_portfolio(slot.strategy, record, empty, set())
        try:
            slot.strategy.on_restart()
        except Exception as exc:  # noqa: BLE001 - a strategy's hook must not keep the others down
            host._fail(slot, exc)
    host.publish_status()
    ctx.log.info("recover: strategies rebuilt from the journal: %s", notes)
