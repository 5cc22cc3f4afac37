"""The README's own strategy, Python and compiled, as a user runs them: each file saved as written in
a fresh working directory, then ``hftshm backtest --strategy FILE_MODULE:Class`` from there (and by
file path from elsewhere). The two versions are the same strategy: they must trade identically."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.platform_harness import HFTSHM, REAL_DAY, ROOT, cli_env

pytestmark = pytest.mark.slow


def readme_files() -> dict[str, str]:
    """file name -> source of every README python block that starts with ``# <name>.py``."""
    text = (ROOT / "README.md").read_text()
    return {m.group(1): m.group(2) for m in re.finditer(r"```python\n# (\w+\.py)\n(.*?)```", text, re.S)}


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("user")
    files = readme_files()
    assert {"mystrats.py", "mystrats_nb.py"} <= set(files), "the README's examples changed names"
    for name, source in files.items():
        (directory / name).write_text(source)
    return directory


def backtest(cwd: Path, spec: str) -> dict:
    done = subprocess.run([HFTSHM, "backtest", "--data", str(REAL_DAY), "--strategy", spec, "--json"], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=cli_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_both_readme_strategies_backtest_from_their_directory_and_agree(user_dir):
    python = backtest(user_dir, "mystrats:ImbalanceTaker")
    compiled = backtest(user_dir, "mystrats_nb:ImbalanceTaker")
    assert python["engine"] == "python" and compiled["engine"] == "compiled"
    assert python["rows"] == compiled["rows"] > 500_000
    for key in ("trades", "orders_sent", "net_pnl", "position", "fees"):
        assert python[key] == compiled[key], key
    assert compiled["orders_sent"] > 0


def test_a_file_path_names_the_strategy_from_any_directory(user_dir, tmp_path):
    result = backtest(tmp_path, f"{user_dir / 'mystrats_nb.py'}:ImbalanceTaker")
    assert result["engine"] == "compiled" and result["rows"] > 500_000


def test_an_unknown_module_is_refused_by_name(tmp_path):
    done = subprocess.run([HFTSHM, "backtest", "--data", str(REAL_DAY), "--strategy", "nosuchmod:Thing"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=cli_env())
    assert done.returncode != 0
    assert "nosuchmod" in done.stdout + done.stderr


def test_the_benchmarked_example_is_the_readme_block_as_written():
    module = (ROOT / "hftshm" / "strategies" / "examples" / "imbalance_nb.py").read_text()
    assert module.split('"""', 2)[2].lstrip("\n") == readme_files()["mystrats_nb.py"]
