"""``nats:<subject>`` ring endpoints: the topology adds the bridge worker that carries the ring."""

import pytest

from hftshm.config import ConfigError
from hftshm.runtime.topology import Topology


def _raw(rings, namespace="md"):
    return {"bridge": {"namespace": namespace},
            "workers": {"feed": {"class": "hftshm.feed.worker:FeedWorker"},
                        "strategies": {"class": "hftshm.strategies.worker:StrategyWorker"}},
            "rings": rings}


def test_export_and_import_endpoints_become_bridge_workers():
    topology = Topology.from_config(_raw([
        {"name": "md.strategies", "layout": "market_event", "from": "feed", "to": "nats:"},
        {"name": "md.in", "layout": "market_event", "from": "nats:hftshm.other.md.strategies", "to": "strategies"},
    ]))
    export = topology.worker("bridge_export_md_strategies")
    imported = topology.worker("bridge_import_md_in")
    assert export.factory == "hftshm.bridge.export:ExportWorker"
    assert export.params == {"ring": "md.strategies", "subject": "hftshm.md.md.strategies"}
    assert imported.params == {"ring": "md.in", "subject": "hftshm.other.md.strategies"}
    rings = {r.name: r for r in topology.rings}
    assert rings["md.strategies"].consumer == export.name and rings["md.in"].producer == imported.name
    assert rings["md.in"].remote_subject == "hftshm.other.md.strategies"
    assert {w.name for p in topology.processes() if p.name == "bridge" for w in p.workers} == {export.name, imported.name}


def test_bad_subject_and_double_nats_are_config_errors():
    with pytest.raises(ConfigError, match="not a NATS subject"):
        Topology.from_config(_raw([{"name": "r", "layout": "market_event", "from": "feed", "to": "nats:a.*"}]))
    with pytest.raises(ConfigError, match="only one of from/to"):
        Topology.from_config(_raw([{"name": "r", "layout": "market_event", "from": "nats:", "to": "nats:"}]))


def test_export_key_tees_a_local_ring_to_nats():
    raw = _raw([{"name": "md", "layout": "market_event", "from": "feed", "to": "strategies", "export": "nats:"}])
    topology = Topology.from_config(raw)
    tee = topology.worker("bridge_export_md")
    assert tee.params == {"ring": "md", "subject": "hftshm.md.md", "forward": "md.local"}
    rings = {r.name: r for r in topology.rings}
    assert (rings["md"].producer, rings["md"].consumer) == ("feed", tee.name)
    assert (rings["md.local"].producer, rings["md.local"].consumer) == (tee.name, "strategies")
    with pytest.raises(ConfigError, match="export must be"):
        Topology.from_config(_raw([{"name": "md", "layout": "market_event", "from": "feed", "to": "strategies",
                                    "export": "kafka:x"}]))


def test_a_deterministic_run_imports_market_data_through_one_lockstep_worker():
    raw = _raw([{"name": "md.strategies", "layout": "market_event", "from": "nats:hftshm.md.md", "to": "strategies"},
                {"name": "book.strategies", "layout": "book_snapshot", "from": "nats:hftshm.md.book",
                 "to": "strategies"},
                {"name": "md.exchange", "layout": "market_event", "from": "nats:hftshm.md.md", "to": "feed"}])
    raw["platform"] = {"deterministic": True}
    topology = Topology.from_config(raw)
    assert not [w for w in topology.workers if w.factory.endswith(":ImportWorker")]
    lockstep = topology.worker("bridge_lockstep_import")
    assert lockstep.factory == "hftshm.bridge.lockstep_import:LockstepImportWorker"
    assert lockstep.params == {"rings": {"md.strategies": "hftshm.md.md", "book.strategies": "hftshm.md.book",
                                         "md.exchange": "hftshm.md.md"}}
    assert {r.name for r in topology.outputs_of(lockstep.name)} == {"md.strategies", "book.strategies", "md.exchange"}


def test_a_deterministic_run_imports_only_market_data():
    raw = _raw([{"name": "orders.in", "layout": "order_event", "from": "nats:hftshm.trade.oms.events",
                 "to": "strategies"}])
    raw["platform"] = {"deterministic": True}
    with pytest.raises(ConfigError, match="deterministic run imports market data only"):
        Topology.from_config(raw)


def test_recover_from_names_a_namespace():
    from hftshm.bridge.config import BridgeConfig
    from hftshm.config import Section

    assert BridgeConfig.from_section(Section("bridge", {"recover_from": "trade"})).recover_from == "trade"
    assert BridgeConfig.from_section(Section("bridge", {})).recover_from == ""
    with pytest.raises(ConfigError, match="recover_from"):
        BridgeConfig.from_section(Section("bridge", {"recover_from": "hftshm.trade.oms.events"}))
