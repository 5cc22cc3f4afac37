"""The platform on the real day with faults injected mid-run: a worker process SIGKILLed (the
supervisor restarts it), PostgreSQL stopped and started, Redis absent, a consumer too slow for its
ring. The invariants of test_e2e_invariants must still hold (duplicates where the design allows
at-least-once delivery, never a loss)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from hftshm.codes import OrderEventKind
from hftshm.platform import merge
from tests.e2e.platform_harness import (
    assert_holds,
    books_from_fills,
    BUSY_MARKET_MAKER,
    MARKET_MAKER_AND_VWAP,
    REAL_DAY_BOOK_SNAPSHOTS,
    Probe,
    database_problems,
    delete_redis_namespace,
    e2e_config,
    event_delivery_problems,
    kill_when,
    open_order_problems,
    pipeline_problems,
    position_problems,
    run_platform,
)

pytestmark = pytest.mark.slow


# -- SIGKILL of each worker process in turn ------------------------------------------------------------

# (placement, process to kill). process-per-worker: each worker alone; composite (shipped): the
# "trading" process holds strategies, risk, oms and exchange, "market-data" the feed.
KILLS = [
    ("process-per-worker", "feed"),
    ("process-per-worker", "strategies"),
    ("process-per-worker", "risk"),
    ("process-per-worker", "oms"),
    ("process-per-worker", "exchange"),
    ("process-per-worker", "oms_writer"),
    ("composite", "market-data"),
    ("composite", "trading"),
    # the market maker alone, paced: the trading process runs the compiled trading cycle (runtime.trading_cycle)
    ("composite-market-maker", "trading"),
]

# Every worker keeps (or rebuilds) its state across a SIGKILL: strategies and risk rebuild positions
# and open orders from the OMS's record (hftshm.strategies.restart, hftshm.risk.restart); a restarted
# exchange is a new session whose predecessor's orders the OMS cancels everywhere (hftshm.exchange.session).

_kill_results: dict = {}


def feed_midway(probe: Probe) -> bool:
    """The feed is a third through publishing the day (it runs far ahead of its consumers)."""
    feed = probe.counters("feed")
    return 0.35 * feed["events_total"] <= feed["events_published"] < feed["events_total"]


def trading_midway(probe: Probe) -> bool:
    """A third of the day reached the exchange, the OMS has seen a fill (so state a restart loses
    is visible) and an order is at the exchange (resting, or queued behind its simulated latency)."""
    exchange = probe.counters("exchange")
    return (probe.progress() >= 0.35 and probe.counters("oms")["fills"] >= 1
            and exchange["open_orders_gauge"] + exchange["pending_orders_gauge"] >= 1)


@pytest.fixture
def killed(request, tmp_path_factory):
    """The run for (placement, process), shared by the tests of one parameter (run once)."""
    placement, process = request.param
    if (placement, process) not in _kill_results:
        run_dir = tmp_path_factory.mktemp(f"kill-{process}") / "run"
        compiled = placement.endswith("-market-maker")  # paced: a flood (speed 0) keeps the Python cycle
        strategies = merge(BUSY_MARKET_MAKER, {"feed": {"speed": 20.0}}) if compiled else MARKET_MAKER_AND_VWAP
        config = e2e_config(run_dir, merge(strategies, {"platform": {
            "placement": placement.removesuffix("-market-maker")}}))
        when = feed_midway if process in ("feed", "market-data") else trading_midway
        _kill_results[(placement, process)] = run_platform(config, hooks=[kill_when(process, when)])
    return process, _kill_results[(placement, process)]


def _ids(param) -> str:
    return f"{param[0]}:{param[1]}"


@pytest.mark.parametrize("killed", KILLS, indirect=True, ids=_ids)
def test_sigkill_loses_nothing(killed):
    """Restarted by the supervisor; rings resume at the released cursors (at-least-once); the OMS
    refuses re-delivered orders and reports by id; every order event reaches the database."""
    process, result = killed
    assert f"kill:{process}" in result.fired, "the process was never killed"
    assert result.restarts[process] == 1
    assert result.quiesced
    assert_holds(pipeline_problems(result))
    assert_holds(database_problems(result))
    # the OMS's and the writer's counters restart with their process; the database is the record
    assert len(result.events) <= result.rings["oms.events"].producer_position
    if process not in ("oms", "oms_writer", "trading"):
        assert_holds(event_delivery_problems(result))
    if process in ("oms", "trading"):
        # the restarted OMS counts on from its predecessor's counters: the summary's orders and
        # fills are the run's, as the database records them
        from hftshm.runtime.platform_run import build_summary

        headline = build_summary(result.snapshot, result.elapsed_s, None)["headline"]
        assert (headline["orders"], headline["fills"]) == (len(result.orders), len(result.fills))
    if process in ("feed", "market-data"):
        # the restarted feed rebuilt its books up to where it left off: the day's snapshots, counted
        # across the restart; a batch the kill cut short may have reached a ring twice
        assert result.counters["feed"]["snapshots_published"] == REAL_DAY_BOOK_SNAPSHOTS
        assert result.rings["book.strategies"].producer_position >= REAL_DAY_BOOK_SNAPSHOTS


@pytest.mark.parametrize("killed", KILLS, indirect=True, ids=_ids)
def test_sigkill_keeps_positions_and_open_orders_in_step(killed):
    """Risk, the strategies and the exchange agree with the database after the restart."""
    process, result = killed
    assert_holds(position_problems(result), open_order_problems(result))
    if process in ("strategies", "risk"):
        # the restarted worker rebuilt from the OMS's record (not from a lucky flat position)
        assert "rebuilt from the OMS's record" in result.logs[process]


@pytest.mark.parametrize("killed", [("composite", "trading"), ("composite-market-maker", "trading"),
                                    ("process-per-worker", "risk")], indirect=True, ids=_ids)
def test_sigkill_summary_account_line_agrees_with_the_database(killed):
    """The summary's account line after a restart: risk's rebuilt realized PnL and fees equal an
    average-cost recomputation from the database's fills, and its total is its own parts."""
    from hftshm.runtime.platform_run import build_summary

    process, result = killed
    pnl = build_summary(result.snapshot, result.elapsed_s, None)["pnl"]
    books = books_from_fills(result.fills)
    assert pnl["fees"] == pytest.approx(sum(b.fees for b in books.values()), abs=1e-6)
    assert pnl["realized"] == pytest.approx(sum(b.realized for b in books.values()), abs=1e-6)
    assert pnl["total"] == pytest.approx(pnl["realized"] + pnl["unrealized"] - pnl["fees"], abs=1e-9)


# -- SIGKILL of everything that trades, paced, in each placement -------------------------------------------

# The four stages that hold trading state: the composite "trading" process, or (process-per-worker)
# the four processes killed at the same poll, which loses as much at once.
TRADING = ("strategies", "risk", "oms", "exchange")
TRADING_KILLS = [("composite", ("trading",)), ("process-per-worker", TRADING)]
_trading_results: dict = {}


@pytest.fixture
def trading_killed(request, tmp_path_factory):
    """Two strategies, paced (the compiled cycle runs), the trading process(es) SIGKILLed a third in."""
    placement, processes = request.param
    if placement not in _trading_results:
        run_dir = tmp_path_factory.mktemp(f"kill-trading-{placement}") / "run"
        config = e2e_config(run_dir, merge(MARKET_MAKER_AND_VWAP, {
            "feed": {"speed": 20.0}, "platform": {"placement": placement},
            # a cold numba cache compiles the whole cycle before the first step (minutes on a loaded machine)
            "supervisor": {"start_timeout_s": 900.0}}))
        hooks = [kill_when(process, trading_midway) for process in processes]
        _trading_results[placement] = run_platform(config, hooks=hooks, timeout_s=1200.0)
    return placement, processes, _trading_results[placement]


def _process_logs(result, processes) -> dict[str, str]:
    """Each process's log: a composite process logs into its first worker's file."""
    return {p: result.logs["strategies" if p == "trading" else p] for p in processes}


@pytest.mark.timeout(2400)  # a cold numba cache: the cycle compiles at each start, minutes on a loaded machine
@pytest.mark.parametrize("trading_killed", TRADING_KILLS, indirect=True, ids=lambda p: p[0])
def test_sigkill_of_the_trading_process_keeps_every_strategys_books(trading_killed):
    """After the restart, the summary (summary.json's rows and account line), the positions the
    dashboard and /api/positions show (the strategies' status rows: the same snapshot), risk's account
    and the OMS database agree on every strategy's position, fees and PnL; the total is its parts."""
    from hftshm.runtime.platform_run import build_summary

    placement, processes, result = trading_killed
    for process in processes:
        assert f"kill:{process}" in result.fired and result.restarts[process] == 1
    assert result.quiesced
    assert_holds(pipeline_problems(result), database_problems(result), position_problems(result),
                 open_order_problems(result))
    summary = build_summary(result.snapshot, result.elapsed_s, None)
    # the compiled cycle's OMS, restarted, counts on: the headline is the database's
    assert (summary["headline"]["orders"], summary["headline"]["fills"]) == (len(result.orders), len(result.fills))
    ids = {s.name: s.strategy_id for s in result.snapshot.strategies}
    assert len(ids) == 2
    books = {sid: books_from_fills([f for f in result.fills if int(f["strategy_id"]) == sid]) for sid in ids.values()}
    assert any(len(b) for b in books.values()), "no fill at all: the test proves nothing"
    rows = {row["strategy"]: row for row in summary["positions"]}
    assert set(rows) == set(ids)
    for name, sid in ids.items():
        row, book = rows[name], books[sid]
        expected = next(iter(book.values()), None)
        position = expected.position if expected else 0.0
        assert row["quantity"] == pytest.approx(position, abs=1e-9), name
        assert row["fees"] == pytest.approx(expected.fees if expected else 0.0, abs=1e-6), name
        assert row["realized_pnl"] == pytest.approx(expected.realized if expected else 0.0, abs=1e-6), name
        # flat: no average price (NaN) and nothing unrealized
        expected = 0.0 if position == 0 else position * (row["mark_price"] - row["avg_price"])
        assert row["unrealized_pnl"] == pytest.approx(expected, abs=1e-6)
    pnl = summary["pnl"]
    every = books_from_fills(result.fills)
    assert pnl["fees"] == pytest.approx(sum(b.fees for b in every.values()), abs=1e-6)
    assert pnl["realized"] == pytest.approx(sum(b.realized for b in every.values()), abs=1e-6)
    assert pnl["total"] == pytest.approx(pnl["realized"] + pnl["unrealized"] - pnl["fees"], abs=1e-9)
    # the strategies' rows add up to risk's account (marks may differ by a book or two: a cent)
    assert pnl["strategies_total"] == pytest.approx(pnl["total"], abs=0.05)
    # fees add up; realized PnL does not: two strategies trading one symbol against each other realize
    # on their own average costs, the account on the netted position (equity, above, does add up)
    assert sum(r["fees"] for r in rows.values()) == pytest.approx(pnl["fees"], abs=1e-6)


@pytest.mark.timeout(2400)
@pytest.mark.parametrize("trading_killed", TRADING_KILLS, indirect=True, ids=lambda p: p[0])
def test_the_restarted_trading_process_returns_to_the_compiled_cycle_and_compiles_nothing_in_a_step(trading_killed):
    """The restarted process warms what it runs before its first step (no compilation or cache load
    inside one), and once its rebuild is done it runs the compiled cycle again."""
    placement, processes, result = trading_killed
    for process, text in _process_logs(result, processes).items():
        # the killed life never logs its end; the restarted one does, once
        assert "compiled or loaded inside steps" not in text and "compiled inside a step" not in text, process
        assert text.count("jit: no kernel compiled or loaded inside a step") == 1, process
        [end] = [line for line in text.splitlines() if "compiled cycle:" in line]
        slices = int(end.split("compiled cycle: ")[1].split(" slices")[0])
        assert slices > 0, f"{process}: the restarted process never ran a compiled slice: {end}"


# -- PostgreSQL down for a few seconds mid-run ---------------------------------------------------------

PG_URL = "postgresql+psycopg://postgres@localhost:5432/test"


def pg_cluster() -> tuple[str, str] | None:
    """(version, cluster) of the local PostgreSQL if this process may stop and start it, else None."""
    base = Path("/etc/postgresql")
    if os.geteuid() != 0 or not base.is_dir():
        return None
    versions = sorted(p.name for p in base.iterdir() if (p / "main").is_dir())
    return (versions[-1], "main") if versions else None


def pg_ctl(action: str, cluster: tuple[str, str]) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster[0], cluster[1], action], check=True,
                   capture_output=True, timeout=60)


def pg_wait_ready(timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if subprocess.run(["pg_isready", "-h", "localhost", "-p", "5432"], capture_output=True).returncode == 0:
            return True
        time.sleep(0.2)
    return False


def pg_available() -> bool:
    return subprocess.run(["pg_isready", "-h", "localhost", "-p", "5432"], capture_output=True).returncode == 0


OUTAGE_S = 4.0


@pytest.mark.skipif(pg_cluster() is None, reason="needs a local PostgreSQL cluster and root to stop and start it")
def test_postgresql_outage_loses_no_order_event(tmp_path):
    cluster = pg_cluster()
    # another suite's recovery test may be restarting the same server right now
    assert pg_wait_ready(), "PostgreSQL on localhost:5432 is not running"
    schema = f"e2e_{uuid.uuid4().hex[:12]}"
    # paced at 40x (the day in ~9 s) so the platform keeps trading through the whole outage
    config = e2e_config(tmp_path / "run", merge(BUSY_MARKET_MAKER, {
        "oms": {"database_url": PG_URL, "database_schema": schema}, "feed": {"speed": 40.0}}))
    outage: dict = {}

    def stop_then_start(probe: Probe) -> None:
        if "stopped_ns" not in outage and probe.progress() >= 0.2:
            probe.holds.add("postgresql")
            pg_ctl("stop", cluster)
            outage["stopped_ns"] = time.time_ns()
            outage["stopped_at"] = time.monotonic()
        elif ("stopped_at" in outage and "started_ns" not in outage
              and time.monotonic() - outage["stopped_at"] >= OUTAGE_S):
            outage["writer_errors_during"] = probe.counters("oms_writer")["db_errors"]
            outage["backlog_during"] = probe.counters("oms_writer")["backlog_events_gauge"]
            outage["progress_at_start"] = probe.progress()
            pg_ctl("start", cluster)
            assert pg_wait_ready(), "PostgreSQL did not come back"
            outage["started_ns"] = time.time_ns()
            probe.holds.discard("postgresql")

    try:
        result = run_platform(config, hooks=[stop_then_start])
    finally:
        if not pg_available():
            pg_ctl("start", cluster)
            pg_wait_ready()
        from hftshm.oms.store import Store

        store = Store(PG_URL, schema=schema, create=False)
        try:
            store.drop_schema()
        finally:
            store.close()
    assert "started_ns" in outage, f"the outage never happened: {outage}"
    assert outage["progress_at_start"] < 1.0, "the data ended during the outage; the test proves less"
    assert outage["writer_errors_during"] > 0 or outage["backlog_during"] > 0  # the writer noticed
    assert result.counters["oms_writer"]["reconnects"] + result.counters["oms_writer"]["db_errors"] > 0
    assert_holds(pipeline_problems(result))
    assert_holds(event_delivery_problems(result))  # every event the OMS published is in the database, once
    assert_holds(database_problems(result))
    assert_holds(position_problems(result))
    # and the events created while the database was down are among them
    during = [e for e in result.events if outage["stopped_ns"] <= e["local_ts_ns"] <= outage["started_ns"]]
    assert during, "no order event was created during the outage; the test proves nothing"
    assert any(e["kind"] == OrderEventKind.CREATED for e in during)
    assert result.counters["oms"]["backlog_halts"] == 0  # a few seconds fit the journal


# -- Redis configured but absent -----------------------------------------------------------------------


def test_unreachable_redis_runs_from_shared_memory(tmp_path):
    """Supervised workers (past hftshm run's preflight, which refuses the URL: see test_e2e_cli)
    keep trading when Redis does not answer: risk says so and runs from shared memory."""
    config = e2e_config(tmp_path / "run", merge(BUSY_MARKET_MAKER, {"redis": {"url": "redis://127.0.0.1:6399/0"}}))
    result = run_platform(config)
    assert result.control["redis_status"] == -1
    assert "unreachable" in result.logs["risk"] and "6399" in result.logs["risk"]
    assert result.redis_risk is None
    assert len(result.orders) > 0 and len(result.fills) > 0
    assert_holds(pipeline_problems(result))
    assert_holds(database_problems(result))
    assert_holds(event_delivery_problems(result))
    assert_holds(position_problems(result))


def test_sigkill_of_risk_with_redis_rebuilds_from_the_database_and_mirrors_it(tmp_path):
    """With [redis], a restarted risk worker still rebuilds from the OMS database (not the mirror,
    which may be 100 ms behind its ring cursors), and the mirror then shows the rebuilt positions."""
    namespace = f"e2e{uuid.uuid4().hex[:10]}"
    url = "redis://localhost:6379/0"
    config = e2e_config(tmp_path / "run", merge(MARKET_MAKER_AND_VWAP, {
        "platform": {"placement": "process-per-worker"}, "redis": {"url": url, "namespace": namespace}}))
    try:
        result = run_platform(config, hooks=[kill_when("risk", trading_midway)])
    finally:
        delete_redis_namespace(url, namespace)
    assert "kill:risk" in result.fired and result.restarts["risk"] == 1
    assert "rebuilt from the OMS's record" in result.logs["risk"]
    assert result.redis_risk is not None and result.redis_risk["positions"]
    assert_holds(pipeline_problems(result), database_problems(result), position_problems(result),
                 open_order_problems(result))


# -- a slow consumer: back-pressure ----------------------------------------------------------------------


def test_slow_consumers_block_or_drop_as_configured(tmp_path):
    """Strategies sleep before every step behind a small blocking ring: the feed waits, nothing is
    lost. Risk sleeps too, behind a tiny dropping ring of book snapshots (marks): drops are counted."""
    config = e2e_config(
        tmp_path / "run",
        merge(BUSY_MARKET_MAKER, {"workers": {
            "strategies": {"class": "tests.e2e.platform_harness:SlowStrategyWorker", "params": {"sleep_ms": 2.0}},
            "risk": {"class": "tests.e2e.platform_harness:SlowRiskWorker", "params": {"sleep_ms": 2.0}},
        }}),
        rings={"md.strategies": {"capacity": 1024}, "book.risk": {"capacity": 16, "backpressure": "drop"}},
    )
    result = run_platform(config)
    blocking, dropping = result.rings["md.strategies"], result.rings["book.risk"]
    total = result.counters["feed"]["events_total"]
    # block: the feed waited for the slow consumer, and every event still arrived exactly once
    assert blocking.full_events > 0
    assert result.counters["feed"]["blocked_cycles"] > 0
    assert blocking.drops == 0
    assert blocking.producer_position == blocking.consumer_position == total == result.counters["strategies"]["events"]
    # drop: records that found the ring full were counted, not silently lost
    snapshots = result.counters["feed"]["snapshots_published"]
    assert dropping.drops > 0
    assert dropping.producer_position + dropping.drops == snapshots
    assert dropping.consumer_position == dropping.producer_position == result.counters["risk"]["marks"]
    assert result.rings["book.strategies"].producer_position == snapshots  # the other consumer saw them all
    assert_holds(pipeline_problems(result))
    assert_holds(database_problems(result))
    assert_holds(event_delivery_problems(result))
    assert_holds(position_problems(result))
