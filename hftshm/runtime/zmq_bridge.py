"""The comparison transport: every ring hop carried by pyzmq PUSH/PULL over ``ipc://`` instead.

``hftshm bench pipeline`` runs the same workers twice, once on shared-memory rings and once with
each ring replaced by ZeroMQ, the transport of the Rust system hftshm is modelled on. Workers do
not change: each ring becomes a producer-side ring and a consumer-side ring, both private to one
process, and a pump in each process moves records between them and the sockets, one ZeroMQ message
per record, as the peer system sends one message per event. A full socket (high-water mark) stops
the pump, so back-pressure still reaches the producer through its local ring.
"""

from __future__ import annotations

from pathlib import Path

import zmq

PUMP_BATCH = 1024


def endpoint(run_dir: str | Path, ring_name: str) -> str:
    return f"ipc://{Path(run_dir).resolve() / 'zmq' / ring_name}.ipc"


class ZmqPump:
    """Moves records of one process's rings to and from their sockets; ``pump()`` returns the count."""

    def __init__(self, run_dir: str | Path, outputs: dict, inputs: dict, hwm: int = 65536):
        (Path(run_dir) / "zmq").mkdir(parents=True, exist_ok=True)
        self.context = zmq.Context.instance()
        self.senders = []
        for name, ring in outputs.items():
            sock = self.context.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, hwm)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint(run_dir, name))
            self.senders.append((ring, sock))
        self.receivers = []
        for name, ring in inputs.items():
            sock = self.context.socket(zmq.PULL)
            sock.setsockopt(zmq.RCVHWM, hwm)
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(endpoint(run_dir, name))
            self.receivers.append((ring, sock))

    def pump(self) -> int:
        moved = 0
        for ring, sock in self.senders:
            batch = ring.poll(PUMP_BATCH)
            sent = 0
            for record in batch:
                try:
                    sock.send(record.tobytes(), zmq.NOBLOCK)
                except zmq.Again:
                    break
                sent += 1
            if sent:
                ring.release(sent)
                moved += sent
        for ring, sock in self.receivers:
            slots = ring.claim(PUMP_BATCH)
            received = 0
            raw = slots.view(f"V{ring.layout.itemsize}")
            for i in range(len(slots)):
                try:
                    raw[i] = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                received += 1
            if received:
                ring.commit(received)
                moved += received
        return moved

    def close(self) -> None:
        for _, sock in self.senders + self.receivers:
            sock.close(0)
