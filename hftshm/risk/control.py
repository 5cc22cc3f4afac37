"""The risk control block: kill switch and trading state in shared memory, read on every check.

One small segment per run (``layouts/risk_control.toml``). The supervisor creates it
(``ControlBlock.create(name)``), records its name in the run manifest (``<run_dir>/current.json``)
and hands it to workers as ``ctx.control``; the CLI (``hftshm kill-switch on``, ``hftshm risk state
halted``) finds it through the manifest, and the Redis poller in the risk worker writes it too. The
risk check kernel reads ``kill_switch`` and ``trading_state`` from the live mapping for every intent
(atomic loads on ``words``), so a write is seen by the next check, even mid-batch.

Writers of different processes only ever store whole int64 words, which x86-64 and arm64 do
atomically; ``epoch`` is bumped after the value so a reader that sees the new epoch sees the value.
"""

from __future__ import annotations

import os
import time

import numpy as np

from hftshm.codes import Reason, TradingState
from hftshm.transport.layout import load
from hftshm.transport.segment import Segment, SegmentNotFound

LAYOUT = load("risk_control")


def _word(field: str) -> int:
    return LAYOUT.dtype.fields[field][1] // 8


# int64 word indexes of the block, for kernels (``ControlBlock.words``): they read and write the block
# with atomic loads/stores, so a write from another process is seen by the very next check
EPOCH_WORD = _word("epoch")
KILL_SWITCH_WORD = _word("kill_switch")
TRADING_STATE_WORD = _word("trading_state")
HALT_REASON_WORD = _word("halt_reason")
CHECKS_WORD = _word("checks")
APPROVED_WORD = _word("approved")
REJECTED_WORD = _word("rejected")
REJECT_COUNTS_WORD = _word("reject_counts")
REJECT_COUNTS_LEN = LAYOUT.dtype.fields["reject_counts"][0].shape[0]
MAGIC = 0x4846_5452_4953_4B31  # "HFTRISK1"
_HEADER_BYTES = 64  # magic, layout fingerprint, created unix ns; the record follows


class ControlBlockError(RuntimeError):
    """The block is missing, not a risk control block, or of another layout version."""


class ControlBlock:
    """One ``risk_control`` record in shared memory. ``.array`` (length 1) is what kernels take."""

    def __init__(self, shm: Segment, owner: bool):
        self._shm = shm
        self._owner = owner
        self.array: np.ndarray = np.ndarray((1,), dtype=LAYOUT.dtype, buffer=shm.buf, offset=_HEADER_BYTES)
        self.words: np.ndarray = self.array.view(np.int64)  # the same bytes as int64 words, for kernels

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def create(cls, name: str, initial_state: TradingState = TradingState.ACTIVE) -> "ControlBlock":
        """Create the block ``name``: kill switch off, ``initial_state``, epoch 0, counters zero."""
        try:
            shm = Segment.create(name, _HEADER_BYTES + LAYOUT.itemsize)
        except FileExistsError:
            raise ControlBlockError(
                f"shared memory {name!r} already exists (a run still going, or one that crashed: "
                f"unlink /dev/shm/{name.lstrip('/')} if nothing uses it)"
            ) from None
        np.ndarray((shm.size,), dtype=np.uint8, buffer=shm.buf)[:] = 0
        header = np.ndarray((3,), dtype="<i8", buffer=shm.buf)
        block = cls(shm, owner=True)
        block.array[0]["trading_state"] = int(initial_state)
        header[1] = LAYOUT.fingerprint
        header[2] = time.time_ns()
        header[0] = MAGIC  # last: an attach never sees a half-initialised block as valid
        return block

    @classmethod
    def private(cls, initial_state: TradingState = TradingState.ACTIVE) -> "ControlBlock":
        """A block in process memory (tests, benchmarks, in-process backtests): same API, no segment."""
        block = cls.__new__(cls)
        block._shm = None
        block._owner = False
        block._private_created_ns = time.time_ns()
        block.array = LAYOUT.zeros(1)
        block.words = block.array.view(np.int64)
        block.array[0]["trading_state"] = int(initial_state)
        return block

    @classmethod
    def attach(cls, name: str) -> "ControlBlock":
        try:
            shm = Segment.attach(name)
        except SegmentNotFound:
            raise ControlBlockError(f"no risk control block {name!r} (is the platform running, and is it the "
                                    f"same --run-dir?)") from None
        try:
            header = np.ndarray((3,), dtype="<i8", buffer=shm.buf).copy()
            if shm.size < _HEADER_BYTES + LAYOUT.itemsize or header[0] != MAGIC:
                raise ControlBlockError(f"shared memory {name!r} is not a risk control block")
            if header[1] != LAYOUT.fingerprint:
                raise ControlBlockError(f"control block {name!r} has layout {int(header[1]):016x}; this build "
                                        f"expects {LAYOUT.describe()} (mixed versions?)")
            return cls(shm, owner=False)
        except BaseException:
            shm.close()
            raise

    @property
    def created_unix_ns(self) -> int:
        """When the block was created: identifies the run (a worker restart sees the same value)."""
        if self._shm is None:
            return self._private_created_ns
        return int(np.ndarray((3,), dtype="<i8", buffer=self._shm.buf)[2])

    @property
    def name(self) -> str | None:
        return self._shm.name if self._shm is not None else None

    def close(self) -> None:
        self.array = self.words = None  # type: ignore[assignment]
        if self._shm is not None:
            self._shm.close()  # False if a kernel argument still holds a view: the map goes with it

    def unlink(self) -> None:
        if self._shm is not None:
            self._shm.unlink()

    def __enter__(self) -> "ControlBlock":
        return self

    def __exit__(self, *exc) -> None:
        owner = self._owner
        self.close()
        if owner:
            self.unlink()

    # -- operator writes -------------------------------------------------------------------------

    def _changed(self) -> None:
        record = self.array[0]
        record["changed_unix_ns"] = time.time_ns()
        record["changed_by_pid"] = os.getpid()
        record["epoch"] = record["epoch"] + 1

    def set_kill_switch(self, on: bool) -> None:
        self.array[0]["kill_switch"] = 1 if on else 0
        self._changed()

    def set_trading_state(self, state: TradingState, reason: Reason = Reason.TRADING_HALTED) -> None:
        """Set the state; ``reason`` is what rejects carry while HALTED (operator halts: TRADING_HALTED)."""
        state = TradingState(state)
        record = self.array[0]
        record["halt_reason"] = int(reason) if state == TradingState.HALTED else 0
        record["trading_state"] = int(state)
        self._changed()

    # -- reads -----------------------------------------------------------------------------------

    @property
    def kill_switch(self) -> bool:
        return bool(self.array[0]["kill_switch"])

    @property
    def trading_state(self) -> TradingState:
        return TradingState(int(self.array[0]["trading_state"]))

    @property
    def epoch(self) -> int:
        return int(self.array[0]["epoch"])

    def reject_counts(self) -> dict[str, int]:
        """Rejects by reason name, only reasons that occurred."""
        counts = self.array[0]["reject_counts"]
        out = {}
        for reason in Reason:
            if reason.value < len(counts) and counts[reason.value]:
                out[reason.name.lower()] = int(counts[reason.value])
        return out

    def snapshot(self) -> dict:
        """Everything in the block as plain Python values (CLI status, web UI, tests)."""
        record = self.array[0]
        out = {name: record[name].item() for name in LAYOUT.dtype.names if name != "reject_counts"}
        out["kill_switch"] = bool(out["kill_switch"])
        out["trading_state"] = TradingState(out["trading_state"]).name.lower()
        out["halt_reason"] = Reason(out["halt_reason"]).name.lower() if out["halt_reason"] else ""
        out["reject_counts"] = self.reject_counts()
        return out


# -- durable controls ------------------------------------------------------------------------------

CONTROLS_FILE = "controls.json"


class ControlStore:
    """The operator's controls where they outlive a run: ``<run_dir>/controls.json`` and, with
    ``[redis] url``, the keys ``hftshm:<ns>:kill_switch`` ("1"/"0") and ``hftshm:<ns>:trading_state``.

    Every operator change (CLI, API, the Redis key) is saved here as well as written to the running
    block; the supervisor loads it into a new block before any worker starts, so a platform started
    while the switch is on starts halted. On load the kill switch is on if either copy says so (a
    Redis outage, or a key set by hand while nothing ran, never turns it off); the trading state is
    the file's unless only Redis has one.
    """

    def __init__(self, run_dir: str | os.PathLike, redis_config=None):
        from pathlib import Path

        self.path = Path(run_dir) / CONTROLS_FILE
        self.redis_config = redis_config if redis_config is not None and redis_config.enabled else None

    def read_file(self) -> dict | None:
        import json

        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            # unreadable: the safe reading of a damaged control file is "halted"
            return {"kill_switch": True, "trading_state": "halted", "damaged": True}
        return data if isinstance(data, dict) else None

    def read_redis(self) -> dict | None:
        """``{"kill_switch": bool|None, "trading_state": str|None}``; raises if Redis is unreachable."""
        if self.redis_config is None:
            return None
        from hftshm.risk.redis_mirror import TRUE_VALUES, connect

        client = connect(self.redis_config)
        try:
            kill, state = client.mget([self.redis_config.key("kill_switch"), self.redis_config.key("trading_state")])
        finally:
            client.close()
        return {"kill_switch": None if kill is None else kill.strip().lower() in TRUE_VALUES,
                "trading_state": None if state is None else state.decode(errors="replace").strip().lower()}

    def load(self) -> dict:
        """``{"kill_switch", "trading_state", "saved": bool, "changed_unix_ns", "changed_by", "source",
        "redis_error"}``: the persisted controls, defaults when none were ever saved."""
        stored = self.read_file()
        out = {"kill_switch": False, "trading_state": TradingState.ACTIVE.name.lower(), "saved": stored is not None,
               "changed_unix_ns": 0, "changed_by": "", "source": "", "redis_error": ""}
        if stored:
            out.update({k: stored[k] for k in ("kill_switch", "trading_state", "changed_unix_ns", "changed_by", "source")
                        if k in stored})
        try:
            remote = self.read_redis()
        except Exception as exc:  # noqa: BLE001 - Redis down: the file still holds the controls
            out["redis_error"] = f"{exc.__class__.__name__}: {exc}"
            remote = None
        if remote:
            if remote["kill_switch"]:
                out["kill_switch"] = True
                out["saved"] = True
            if remote["trading_state"] and not stored and remote["trading_state"] in _STATE_NAMES:
                out["trading_state"] = remote["trading_state"]
                out["saved"] = True
        out["kill_switch"] = bool(out["kill_switch"])
        if out["trading_state"] not in _STATE_NAMES:
            out["trading_state"] = TradingState.HALTED.name.lower()
        return out

    def save(self, kill_switch: bool, trading_state: TradingState | str, *, changed_by: str, source: str) -> str:
        """Write both copies; returns "" or what failed in Redis (the file is always written first)."""
        import json

        state = TradingState[str(trading_state).upper()] if isinstance(trading_state, str) else TradingState(trading_state)
        record = {"kill_switch": bool(kill_switch), "trading_state": state.name.lower(),
                  "changed_unix_ns": time.time_ns(), "changed_by": changed_by, "source": source}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)  # atomic: a reader sees the old controls or the new, never half
        if self.redis_config is None:
            return ""
        try:
            from hftshm.risk.redis_mirror import connect

            client = connect(self.redis_config)
            try:
                client.mset({self.redis_config.key("kill_switch"): "1" if kill_switch else "0",
                             self.redis_config.key("trading_state"): state.name.lower()})
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - Redis down: the file holds it; the caller reports it
            return f"Redis {self.redis_config.url} not updated: {exc.__class__.__name__}: {exc}"
        return ""

    def apply_to(self, block: ControlBlock, controls: dict | None = None) -> dict:
        """Load the persisted controls into ``block`` (a new run's, before any worker starts). Only
        saved controls are written (bumping the epoch, so the risk worker keeps them rather than its
        configured ``initial_state``); returns what was loaded."""
        controls = controls if controls is not None else self.load()
        if controls["saved"]:
            block.set_kill_switch(controls["kill_switch"])
            block.set_trading_state(TradingState[controls["trading_state"].upper()])
        return controls


_STATE_NAMES = tuple(s.name.lower() for s in TradingState)
