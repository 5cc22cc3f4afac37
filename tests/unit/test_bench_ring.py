"""Smoke test of ``hftshm bench ring``: it runs every transport with tiny counts and writes the JSON
fields tools read. (Speed is judged by running the benchmark, not here.)"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from hftshm.bench.ring import TRANSPORTS
from hftshm.cli import app

FIELDS = ("transport", "name", "msgs_per_s", "ops_per_s", "p50_ns", "p99_ns", "p999_ns",
          "paced_p50_ns", "paced_p99_ns", "paced_p999_ns")


def test_bench_ring_quick_writes_every_field(tmp_path):
    out = tmp_path / "ring.json"
    result = CliRunner().invoke(app, ["bench", "ring", "--quick", "--count", "300", "--paced-count", "20",
                                      "--interval-us", "5", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["results"]
    assert [row["transport"] for row in rows] == list(TRANSPORTS)
    for row in rows:
        missing = [field for field in FIELDS if field not in row]
        assert not missing, f"{row['transport']}: missing {missing}"
        assert row["name"] == row["transport"] and row["ops_per_s"] == row["msgs_per_s"]
        assert row["msgs_per_s"] > 0 and row["p50_ns"] > 0 and row["paced_p50_ns"] > 0
        assert row["errors"] == 0, f"{row['transport']} delivered records out of order"


def test_bench_ring_rejects_unknown_transport():
    result = CliRunner().invoke(app, ["bench", "ring", "--only", "carrier-pigeon"])
    assert result.exit_code != 0
    assert "carrier-pigeon" in result.output
