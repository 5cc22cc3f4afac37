"""``hftshm bench ring``: the SPSC shared-memory ring against the usual ways to pass messages between
Python processes, and against the physical floor (one cache line bounced between two cores).

Every transport carries 64-byte ``market_event`` records (peers: the record's 64 bytes) from a
producer process pinned to one core to a consumer pinned to another. Two runs each:

* back-to-back: the producer sends as fast as it can; throughput is records / (last arrival - first
  arrival) at the consumer, latency is queueing-dominated (what a burst sees);
* paced: one record every ``--interval-us`` (default 50 us), so latency is the transport's own.

One-way latency = consumer's CLOCK_MONOTONIC at arrival - producer's stamp in the record. In numba
the clock is ``clock_nb.monotonic_ns`` (clock_gettime through the vDSO, TSC clocksource, one clock
for all cores); in Python ``time.monotonic_ns``. Back-to-back numba runs stamp one record in 64 (a
clock read costs more than a ring hand-off); paced runs stamp every record.
"""

from __future__ import annotations

import os

import struct
import time
from dataclasses import dataclass
from typing import Callable

import typer

RECORD_BYTES = 64
STAMP_OFFSET = 24  # market_event.publish_ts_ns
SEQ_OFFSET = 0
MAX_SAMPLES = 1_000_000
WINDOWS = 10
NUMBA_STRIDE = 64
NUMBA_BATCH = 256
PYTHON_BATCH = 256
RING_CAPACITY = 4096
TRANSPORTS = ("pingpong", "hftshm-numba", "hftshm-numba-batch", "hftshm-python", "hftshm-python-batch",
              "mp-queue", "mp-pipe", "zmq")
# back-to-back message counts by default; --count overrides them all, --quick shrinks them
DEFAULT_COUNTS = {"pingpong": 1_000_000, "hftshm-numba": 30_000_000, "hftshm-numba-batch": 60_000_000,
                  "hftshm-python": 300_000, "hftshm-python-batch": 5_000_000, "mp-queue": 200_000,
                  "mp-pipe": 300_000, "zmq": 300_000}
QUICK_COUNT = 2_000
QUICK_PACED = 100


@dataclass
class Job:
    transport: str
    count: int
    interval_ns: int  # 0 = back-to-back
    name: str  # ring / segment / socket name for this run


# ---------------------------------------------------------------- process plumbing


def _pin(cpu: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[cpu % len(cpus)]})


def _consumer_main(consume: Callable, job: Job, conn, cpu: int) -> None:
    _pin(cpu)
    try:
        result = consume(job, lambda: conn.send(("ready", None)))
        conn.send(("done", result))
    except BaseException as exc:  # report, do not hang the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _producer_main(produce: Callable, job: Job, cpu: int) -> None:
    _pin(cpu)
    produce(job)


def _run_pair(produce: Callable, consume: Callable, job: Job, timeout_s: float = 300.0) -> dict:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    parent_conn, child_conn = ctx.Pipe()
    consumer = ctx.Process(target=_consumer_main, args=(consume, job, child_conn, 1), daemon=True)
    consumer.start()
    producer = None
    try:
        if not parent_conn.poll(timeout_s):
            raise RuntimeError(f"{job.transport}: consumer did not start")
        kind, payload = parent_conn.recv()
        if kind == "error":
            raise RuntimeError(f"{job.transport} consumer: {payload}")
        producer = ctx.Process(target=_producer_main, args=(produce, job, 0), daemon=True)
        producer.start()
        if not parent_conn.poll(timeout_s):
            raise RuntimeError(f"{job.transport}: no result within {timeout_s:.0f} s")
        kind, payload = parent_conn.recv()
        if kind == "error":
            raise RuntimeError(f"{job.transport} consumer: {payload}")
        return payload
    finally:
        for process in (producer, consumer):
            if process is not None:
                process.join(5)
                if process.is_alive():
                    process.kill()
                    process.join()


class Windows:
    """Arrival time and count at the first message and every ``count / WINDOWS`` messages after it.

    The machine is shared and virtualised: a core is sometimes taken away for milliseconds, which
    stalls a spinning peer. Throughput is reported per window: the best window (what the transport
    does while both sides run), the median window, and the whole run."""

    def __init__(self, count: int):
        import numpy as np

        self.mark_ns = np.zeros(WINDOWS + 2, np.int64)
        self.mark_count = np.zeros(WINDOWS + 2, np.int64)
        self.every = max(count // WINDOWS, 1)
        self.next_at = 0
        self.marks = 0

    def mark(self, received: int, now_ns: int) -> None:
        """``received`` messages had arrived before the one(s) arriving at ``now_ns``."""
        if received >= self.next_at and self.marks < len(self.mark_ns) - 1:
            self.mark_ns[self.marks] = now_ns
            self.mark_count[self.marks] = received
            self.marks += 1
            self.next_at += self.every

    def finish(self, received: int) -> None:
        self.mark_ns[self.marks] = time.monotonic_ns()
        self.mark_count[self.marks] = received
        self.marks += 1


def _result(samples, windows: Windows, errors: int = 0) -> dict:
    import numpy as np

    times = windows.mark_ns[: windows.marks].astype(np.float64)
    counts = windows.mark_count[: windows.marks].astype(np.float64)
    spans = np.diff(times)
    rates = np.diff(counts)[spans > 0] * 1e9 / spans[spans > 0]
    whole = (counts[-1] - counts[0]) * 1e9 / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else float("nan")
    return {"samples": np.asarray(samples, dtype=np.int64), "errors": errors, "overall_msgs_per_s": whole,
            "msgs_per_s": float(rates.max()) if len(rates) else whole,
            "median_msgs_per_s": float(np.median(rates)) if len(rates) else whole}


# ---------------------------------------------------------------- hftshm ring, numba


def _ring_attach(job: Job, role: str):
    from hftshm.transport.ring import Ring

    return Ring.attach(job.name, "market_event", role=role)


def _numba_produce(job: Job) -> None:
    from hftshm.bench import ring_nb as k

    ring = _ring_attach(job, "producer")
    if job.transport == "hftshm-numba-batch" and job.interval_ns == 0:
        k.produce_batch(ring.ctrl, ring.records, job.count, NUMBA_BATCH)
    else:  # paced batch runs send one record at a time too: there is nothing to batch
        k.produce_each(ring.ctrl, ring.records, job.count, NUMBA_STRIDE, job.interval_ns)
    ring.close()


def _numba_consume(job: Job, ready: Callable) -> dict:
    import numpy as np

    from hftshm.bench import ring_nb as k

    ring = _ring_attach(job, "consumer")
    stride = 1 if job.interval_ns else NUMBA_STRIDE
    samples = np.zeros(min(job.count // stride + 1, MAX_SAMPLES), np.int64)
    batch = NUMBA_BATCH if job.transport == "hftshm-numba-batch" else 1
    windows = Windows(job.count)
    ready()
    empty_pauses = 0 if job.interval_ns else k.THROUGHPUT_EMPTY_PAUSES
    taken, errors, windows.marks = k.consume(ring.ctrl, ring.records, job.count, batch, stride, samples,
                                             windows.mark_ns, windows.mark_count, empty_pauses)
    ring.close()
    return _result(samples[:taken], windows, errors)


# ---------------------------------------------------------------- hftshm ring, Python API


def _python_produce(job: Job) -> None:
    import numpy as np

    ring = _ring_attach(job, "producer")
    if job.transport == "hftshm-python-batch" and job.interval_ns == 0:
        written = 0
        while written < job.count:
            view = ring.claim(min(PYTHON_BATCH, job.count - written))
            n = len(view)
            if n == 0:
                continue
            view["seq"] = np.arange(written, written + n)
            view["publish_ts_ns"] = time.monotonic_ns()
            ring.commit(n)
            written += n
    else:
        record = np.zeros((), ring.dtype)
        next_send = time.monotonic_ns()
        for seq in range(job.count):
            if job.interval_ns:
                next_send += job.interval_ns
                while time.monotonic_ns() < next_send:
                    pass
            record["seq"] = seq
            record["publish_ts_ns"] = time.monotonic_ns()
            while not ring.try_write(record):
                pass
    ring.close()


def _python_consume(job: Job, ready: Callable) -> dict:
    import numpy as np

    ring = _ring_attach(job, "consumer")
    samples = np.zeros(min(job.count, MAX_SAMPLES), np.int64)
    taken = received = errors = 0
    windows = Windows(job.count)
    ready()
    if job.transport == "hftshm-python-batch":
        while received < job.count:
            view = ring.poll(PYTHON_BATCH)
            n = len(view)
            if n == 0:
                continue
            now = time.monotonic_ns()
            windows.mark(received, now)
            errors += int(view["seq"][0] != received)
            keep = min(n, len(samples) - taken)
            samples[taken: taken + keep] = now - view["publish_ts_ns"][:keep]
            taken += keep
            ring.release(n)
            received += n
    else:
        while received < job.count:
            record = ring.try_read()
            if record is None:
                continue
            now = time.monotonic_ns()
            windows.mark(received, now)
            errors += int(record["seq"] != received)
            if taken < len(samples):
                samples[taken] = now - int(record["publish_ts_ns"])
                taken += 1
            received += 1
    windows.finish(received)
    ring.close()
    return _result(samples[:taken], windows, errors)


# ---------------------------------------------------------------- peers: multiprocessing and zmq


def _message(seq: int) -> bytes:
    return struct.pack("<q16xq32x", seq, time.monotonic_ns())  # seq at 0, stamp at 24: 64 bytes


def _paced_messages(job: Job):
    next_send = time.monotonic_ns()
    for seq in range(job.count):
        if job.interval_ns:
            next_send += job.interval_ns
            while time.monotonic_ns() < next_send:
                pass
        yield _message(seq)


def _consume_messages(job: Job, receive: Callable[[], bytes]) -> dict:
    import numpy as np

    samples = np.zeros(min(job.count, MAX_SAMPLES), np.int64)
    errors = 0
    windows = Windows(job.count)
    unpack = struct.Struct("<q16xq").unpack_from
    for received in range(job.count):
        payload = receive()
        now = time.monotonic_ns()
        seq, stamp = unpack(payload)
        windows.mark(received, now)
        errors += seq != received
        if received < len(samples):
            samples[received] = now - stamp
    windows.finish(job.count)
    return _result(samples, windows, errors)


_QUEUES: dict = {}


def _queue_produce(job: Job) -> None:
    channel = _QUEUES[job.name]
    send = channel.put if job.transport == "mp-queue" else channel.send_bytes
    for message in _paced_messages(job):
        send(message)
    if job.transport == "mp-queue":
        channel.close()
        channel.join_thread()


def _queue_consume(job: Job, ready: Callable) -> dict:
    channel = _QUEUES[job.name + ".rx"]
    ready()
    return _consume_messages(job, channel.get if job.transport == "mp-queue" else channel.recv_bytes)


def _zmq_address(job: Job) -> str:
    return f"ipc:///tmp/{job.name}.ipc"


def _zmq_produce(job: Job) -> None:
    import zmq

    context = zmq.Context()
    socket = context.socket(zmq.PUSH)
    socket.setsockopt(zmq.SNDHWM, 100_000)
    socket.connect(_zmq_address(job))
    for message in _paced_messages(job):
        socket.send(message, copy=True)
    socket.close(linger=-1)
    context.term()


def _zmq_consume(job: Job, ready: Callable) -> dict:
    import zmq

    context = zmq.Context()
    socket = context.socket(zmq.PULL)
    socket.setsockopt(zmq.RCVHWM, 100_000)
    socket.bind(_zmq_address(job))
    ready()
    try:
        return _consume_messages(job, socket.recv)
    finally:
        socket.close(linger=0)
        context.term()
        try:
            os.unlink(_zmq_address(job)[len("ipc://"):])
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------- ping-pong: the floor


def _pingpong_produce(job: Job) -> None:
    import numpy as np

    from hftshm.bench import ring_nb as k
    from hftshm.transport.segment import Segment

    segment = Segment.attach(job.name)
    ctrl = np.ndarray((64,), np.int64, buffer=segment.buf)
    k.ping(ctrl, job.count, job.interval_ns)
    del ctrl
    segment.close()


def _pingpong_consume(job: Job, ready: Callable) -> dict:
    import numpy as np

    from hftshm.bench import ring_nb as k
    from hftshm.transport.segment import Segment

    segment = Segment.attach(job.name)
    ctrl = np.ndarray((64,), np.int64, buffer=segment.buf)
    samples = np.zeros(min(job.count, MAX_SAMPLES), np.int64)
    windows = Windows(job.count)
    ready()
    windows.marks = k.pong(ctrl, job.count, samples, windows.mark_ns, windows.mark_count)
    del ctrl
    segment.close()
    # one message per round trip: ops/s counts round trips, the one-way latency is the samples
    return _result(samples, windows)


# ---------------------------------------------------------------- one transport, both runs


def _warm_numba() -> None:
    """Compile (or load from cache) every kernel in the parent, so forked children start warm."""
    import numpy as np

    from hftshm.bench import ring_nb as k
    from hftshm.transport.ring import Ring
    from hftshm.transport.testing import unique_name

    with Ring.create(unique_name("bench-warm"), "market_event", 8) as ring:
        try:
            samples = np.zeros(8, np.int64)
            k.produce_each(ring.ctrl, ring.records, 4, 2, 0)
            marks = np.zeros(4, np.int64)
            k.consume(ring.ctrl, ring.records, 4, 1, 2, samples, marks, marks.copy(), 0)
            k.produce_batch(ring.ctrl, ring.records, 4, 4)
            k.consume(ring.ctrl, ring.records, 4, 4, 2, samples, marks, marks.copy(), 32)
            ctrl = np.zeros(64, np.int64)
            ctrl[k.PONG_SEQ] = 1
            k.ping(ctrl, 1, 0)
            ctrl[k.PING_SEQ] = 1
            k.pong(ctrl, 1, samples, marks, marks.copy())
        finally:
            ring.unlink()


def _run_once(transport: str, count: int, interval_ns: int) -> dict:
    from hftshm.transport.ring import Ring
    from hftshm.transport.segment import Segment

    name = f"hftshm_{os.getpid()}_bench-{transport}-{'paced' if interval_ns else 'b2b'}"
    job = Job(transport, count, interval_ns, name)
    if transport.startswith("hftshm"):
        produce, consume = ((_numba_produce, _numba_consume) if "numba" in transport
                            else (_python_produce, _python_consume))
        with Ring.create(name, "market_event", RING_CAPACITY, replace=True) as ring:
            try:
                return _run_pair(produce, consume, job)
            finally:
                ring.unlink()
    if transport == "pingpong":
        segment = Segment.create(name, 4096)
        try:
            return _run_pair(_pingpong_produce, _pingpong_consume, job)
        finally:
            segment.unlink()
            segment.close()
    if transport in ("mp-queue", "mp-pipe"):
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        if transport == "mp-queue":
            _QUEUES[name] = _QUEUES[name + ".rx"] = ctx.Queue()
        else:
            _QUEUES[name + ".rx"], _QUEUES[name] = ctx.Pipe(duplex=False)
        try:
            return _run_pair(_queue_produce, _queue_consume, job)
        finally:
            _QUEUES.pop(name, None)
            _QUEUES.pop(name + ".rx", None)
    if transport == "zmq":
        return _run_pair(_zmq_produce, _zmq_consume, job)
    raise ValueError(f"unknown transport {transport!r}; known: {', '.join(TRANSPORTS)}")


def measure(transport: str, count: int, paced_count: int, interval_ns: int, repeat: int = 1) -> dict:
    """One result row: back-to-back throughput and latency, then paced latency. With ``repeat`` > 1
    the back-to-back run with the best window and the paced run with the lowest p50 are kept (the
    usual best-of-N for a machine whose cores are sometimes taken away)."""
    import numpy as np

    from hftshm.bench.report import percentiles_ns

    back_to_back = max((_run_once(transport, count, 0) for _ in range(repeat)), key=lambda r: r["msgs_per_s"])
    paced = min((_run_once(transport, paced_count, interval_ns) for _ in range(repeat)),
                key=lambda r: float(np.median(r["samples"])) if len(r["samples"]) else float("inf"))
    row = {"transport": transport, "name": transport, "msgs_per_s": back_to_back["msgs_per_s"]}
    row["ops_per_s"] = row["msgs_per_s"]
    row["median_msgs_per_s"] = back_to_back["median_msgs_per_s"]
    row["overall_msgs_per_s"] = back_to_back["overall_msgs_per_s"]
    row.update(percentiles_ns(back_to_back["samples"]))
    row.update({f"paced_{key}": value for key, value in percentiles_ns(paced["samples"]).items()})
    row["messages"] = count
    row["runs"] = repeat
    row["errors"] = back_to_back["errors"] + paced["errors"]
    return row


def _ratios(rows: list[dict]) -> list[str]:
    by_name = {row["transport"]: row for row in rows}
    notes = []

    def ratio(a: str, b: str, key: str, label: str, invert: bool = False) -> None:
        if a in by_name and b in by_name and by_name[b][key] and by_name[a][key]:
            value = by_name[b][key] / by_name[a][key] if invert else by_name[a][key] / by_name[b][key]
            notes.append(f"{label}: {value:,.1f}x")

    ratio("hftshm-numba", "zmq", "msgs_per_s", "hftshm-numba / zmq throughput")
    ratio("hftshm-numba-batch", "zmq", "msgs_per_s", "hftshm-numba-batch / zmq throughput")
    ratio("hftshm-numba", "zmq", "paced_p50_ns", "zmq / hftshm-numba paced p50 latency", invert=True)
    ratio("hftshm-numba", "pingpong", "paced_p50_ns", "hftshm-numba / pingpong paced p50 latency")
    ratio("hftshm-python-batch", "mp-queue", "msgs_per_s", "hftshm-python-batch / mp-queue throughput")
    return notes


def register(bench_app: typer.Typer) -> None:
    from hftshm.bench import ring_wakeup

    bench_app.command("ring")(ring_command)
    ring_wakeup.register(bench_app)


def ring_command(
    count: int = typer.Option(None, "--count", help="back-to-back messages for every transport (default: per transport)"),
    paced_count: int = typer.Option(10_000, "--paced-count", help="paced messages per transport"),
    interval_us: float = typer.Option(50.0, "--interval-us", help="gap between paced messages"),
    only: str = typer.Option(None, "--only", help=f"comma-separated subset of: {', '.join(TRANSPORTS)}"),
    repeat: int = typer.Option(1, "--repeat", min=1, help="runs per transport; keep the best (noisy machines)"),
    quick: bool = typer.Option(False, "--quick", help="tiny counts: checks it runs, measures nothing"),
    json_path: str = typer.Option(None, "--json", help="write {\"results\": [...]} here"),
) -> None:
    """Shared-memory ring vs multiprocessing Queue/Pipe, zmq ipc and cache-line ping-pong, 64-byte records,
    producer and consumer pinned to different cores."""
    from hftshm.bench.report import emit

    chosen = TRANSPORTS if not only else tuple(t.strip() for t in only.split(",") if t.strip())
    unknown = [t for t in chosen if t not in TRANSPORTS]
    if unknown:
        raise typer.BadParameter(f"unknown transport(s) {', '.join(unknown)}; known: {', '.join(TRANSPORTS)}")
    if quick:
        paced_count = min(paced_count, QUICK_PACED)
    _warm_numba()
    rows = []
    for transport in chosen:
        messages = count or (QUICK_COUNT if quick else DEFAULT_COUNTS[transport])
        rows.append(measure(transport, messages, paced_count, int(interval_us * 1000), repeat))
    notes = _ratios(rows) + [
        f"{len(os.sched_getaffinity(0))} CPUs; producer pinned to one core, consumer to another; "
        "latency = consumer CLOCK_MONOTONIC - producer stamp. Shared machine: figures are noisy.",
        "msgs_per_s = best of 10 windows of the back-to-back run (median_ and overall_msgs_per_s beside it)"
        + (f"; best of {repeat} runs per transport." if repeat > 1 else "."),
        "pingpong: one stamped cache line bounced between the cores (msgs_per_s = round trips/s).",
        "numba consumers: back-to-back runs pause 32x when the ring is empty (throughput setting), "
        "paced runs spin tight (latency setting).",
    ]
    emit("hftshm bench ring: 64-byte records between two pinned processes", rows, json_path, notes)



