"""A network namespace joined to this one by a veth pair, for tests of two hosts on one machine.

``veth_namespace()`` creates the namespace (``ip netns add``, iproute2; needs CAP_NET_ADMIN) and a
veth pair with a /30 of its own between the two ends, and removes both in a ``finally``; where
``ip netns add`` is refused (no privilege, no iproute2) the test is skipped with the reason.
``entered(ns)`` moves the calling thread into the namespace (setns(2)), so the processes it starts
(a platform's workers) live there too, and back out afterwards. ``nats_server_on(address)`` is a
private JetStream server bound to one address (the veth's host end), gone afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import random
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class VethNamespace:
    name: str
    host_if: str      # the veth end in this (the host's) namespace
    host_ip: str
    ns_ip: str

    def host_bytes(self) -> int:
        """Bytes through the host end of the veth pair (both directions)."""
        stats = Path("/sys/class/net") / self.host_if / "statistics"
        return int((stats / "rx_bytes").read_text()) + int((stats / "tx_bytes").read_text())


def _ip(*args: str, netns: str = "") -> None:
    command = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def veth_namespace():
    tag = uuid.uuid4().hex[:6]
    name, host_if, ns_if = f"hftshm-{tag}", f"vh{tag}", f"vn{tag}"
    base = f"10.213.{random.randrange(256)}.{4 * random.randrange(64)}"  # a /30 of our own
    prefix, last = base.rsplit(".", 1)
    host_ip, ns_ip = f"{prefix}.{int(last) + 1}", f"{prefix}.{int(last) + 2}"
    try:
        added = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no iproute2 (ip) on this machine: cannot make a network namespace")
    if added.returncode != 0:
        pytest.skip(f"ip netns add refused: {added.stderr.strip() or added.returncode}")
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", name)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("addr", "add", f"{ns_ip}/30", "dev", ns_if, netns=name)
        _ip("link", "set", ns_if, "up", netns=name)
        _ip("link", "set", "lo", "up", netns=name)
        yield VethNamespace(name, host_if, host_ip, ns_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)  # takes its peer along
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@contextlib.contextmanager
def entered(namespace: VethNamespace):
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{namespace.name}") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace.name} failed")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the host's namespace failed")


@contextlib.contextmanager
def nats_server_on(address: str, store_dir: Path, port: int = 4222):
    """nats-server -js listening on ``address`` only; yields its nats:// URL."""
    store_dir.mkdir(parents=True, exist_ok=True)
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    server = subprocess.Popen([binary, "-a", address, "-p", str(port), "-js", "-sd", str(store_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
                break
            assert server.poll() is None and time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.1)
        yield f"nats://{address}:{port}"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
