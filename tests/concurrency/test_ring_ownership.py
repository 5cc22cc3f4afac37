"""Only the creator owns a ring's segment: an attaching process that exits (cleanly or killed) must
not unlink it, and nobody's resource tracker may warn about segments it does not own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from hftshm.transport.testing import no_segment_leaks, unique_name

_CREATOR = textwrap.dedent("""
    import subprocess, sys
    from hftshm.transport.ring import Ring
    name = sys.argv[1]
    ring = Ring.create(name, "market_event", 8)
    ring.try_write({"seq": 7})
    attacher = subprocess.run([sys.executable, "-c", sys.argv[2], name], capture_output=True, text=True)
    sys.stderr.write(attacher.stderr)
    assert attacher.returncode == 0, attacher.stderr
    again = Ring.attach(name, "market_event")       # still there after the attacher exited
    assert again.try_read()["seq"] == 8
    again.close()
    ring.unlink()
    ring.close()
    print("ok")
""")

_ATTACHER = textwrap.dedent("""
    import sys
    from hftshm.transport.ring import Ring
    ring = Ring.attach(sys.argv[1], "market_event", role="consumer")
    assert ring.try_read()["seq"] == 7
    ring.close()
    producer = Ring.attach(sys.argv[1], "market_event", role="producer")
    producer.try_write({"seq": 8})
    producer.close()
""")


def test_attacher_exit_neither_unlinks_nor_warns():
    with no_segment_leaks():
        name = unique_name("owner")
        result = subprocess.run([sys.executable, "-c", _CREATOR, name, _ATTACHER], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "ok"
        assert "resource_tracker" not in result.stderr and "leaked" not in result.stderr, result.stderr
        assert not os.path.exists(f"/dev/shm/{name}")


_CRASHING_CREATOR = textwrap.dedent("""
    import os, sys
    from hftshm.transport.ring import Ring
    Ring.create(sys.argv[1], "market_event", 8)
    os._exit(1)   # dies without unlinking: its resource tracker is the safety net
""")


def test_creator_that_dies_has_its_segment_removed_by_its_tracker():
    with no_segment_leaks():
        name = unique_name("crash")
        result = subprocess.run([sys.executable, "-c", _CRASHING_CREATOR, name], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 1
        deadline = time.monotonic() + 30  # the tracker process cleans up after its parent is gone
        while os.path.exists(f"/dev/shm/{name}") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not os.path.exists(f"/dev/shm/{name}")
