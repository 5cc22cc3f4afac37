"""``hftshm bench bridge --quick`` runs end to end on the real NATS server and reports its entries."""

import json

from typer.testing import CliRunner

from hftshm.cli import app


def test_bench_bridge_quick_reports_throughput_and_paced_latency(tmp_path):
    out = tmp_path / "bridge.json"
    result = CliRunner().invoke(app, ["bench", "bridge", "--quick", "--json", str(out)])
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(out.read_text())["results"]}
    assert entries["bridge.throughput"]["ops_per_s"] > 0 and entries["bridge.throughput"]["records"] == 20_000
    for name in ("bridge.paced.local_ring", "bridge.paced.nats"):
        assert entries[name]["p50_ns"] > 0 and entries[name]["p99_ns"] >= entries[name]["p50_ns"]
    assert "bridge.paced.added" in entries
    # the one-at-a-time exporter (what ships) and the pipelined one, side by side
    assert entries["bridge.throughput"]["window"] == 1 and entries["bridge.throughput.pipelined"]["window"] > 1
    assert entries["bridge.throughput.pipelined"]["ops_per_s"] > 0 and entries["bridge.paced.nats.pipelined"]["p50_ns"] > 0
