"""Finding strategy classes: built-ins, module:Class, entry points; errors that say what exists."""

import sys
import textwrap

import pytest

from hftshm.strategies import Strategy
from hftshm.strategies.builtin.market_maker import MarketMaker
from hftshm.strategies.registry import ENTRY_POINT_GROUP, StrategyLoadError, available, load_class
from tests.unit.strategy_fixtures import BuyOnce


def test_builtins_by_name():
    assert load_class("market_maker") is MarketMaker
    assert load_class("vwap").__name__ == "VwapExecution"
    assert load_class("mean_reversion").__name__ == "MeanReversion"


def test_module_class_path():
    assert load_class("tests.unit.strategy_fixtures:BuyOnce") is BuyOnce


def test_user_module_written_to_disk(tmp_path, monkeypatch):
    (tmp_path / "my_alpha.py").write_text(textwrap.dedent("""
        from hftshm.strategies import Strategy

        class Alpha(Strategy):
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = load_class("my_alpha:Alpha")
    assert issubclass(cls, Strategy) and cls.__name__ == "Alpha"
    sys.modules.pop("my_alpha", None)


def test_entry_point_plugin(tmp_path, monkeypatch):
    (tmp_path / "plugin_pkg.py").write_text("from hftshm.strategies import Strategy\nclass P(Strategy):\n    pass\n")
    dist = tmp_path / "plugin_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nmy_plugin = plugin_pkg:P\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "my_plugin" in available()
    assert load_class("my_plugin").__name__ == "P"
    sys.modules.pop("plugin_pkg", None)


@pytest.mark.parametrize("spec, words", [
    ("no_such_thing", ["unknown strategy", "market_maker", "entry point"]),
    ("no_such_module_xyz:Foo", ["cannot import module"]),
    ("tests.unit.strategy_fixtures:Missing", ["has no 'Missing'"]),
    ("tests.unit.strategy_fixtures:snapshot", ["not a subclass"]),
])
def test_load_errors_say_what_was_tried(spec, words):
    with pytest.raises(StrategyLoadError) as err:
        load_class(spec)
    for word in words:
        assert word in str(err.value)


def test_a_module_in_the_working_directory_and_a_file_path_both_load(tmp_path, monkeypatch):
    import os
    import sys

    (tmp_path / "cwd_strats.py").write_text(
        "from hftshm.strategies import Strategy\n\nclass Mine(Strategy):\n    pass\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "path_strats.py").write_text(
        "from hftshm.strategies import Strategy\n\nclass Other(Strategy):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.setenv("PYTHONPATH", "")
    assert load_class("cwd_strats:Mine").__name__ == "Mine"  # as `python -m` would find it
    assert str(tmp_path) in sys.path and str(tmp_path) in os.environ["PYTHONPATH"]  # for spawned workers
    assert load_class("elsewhere/path_strats.py:Other").__name__ == "Other"
    with pytest.raises(StrategyLoadError, match="nosuch"):
        load_class("nosuch_module_here:Thing")
