"""The status table: one ``worker_status`` row per worker in one shared-memory segment.

Workers write their heartbeat and counters; the supervisor reads them for liveness and metrics and
writes only each row's ``command``. Rows outlive worker processes, so a restarted worker finds its
counters where it left them (the feed resumes from its published count this way).
"""

from __future__ import annotations

import numpy as np

from hftshm.runtime import segments
from hftshm.transport import layout as layouts

STATUS_LAYOUT = layouts.load("worker_status")
_WORD = {f.name: f.offset // 8 for f in STATUS_LAYOUT.fields}
WORDS_PER_ROW = STATUS_LAYOUT.itemsize // 8
PID, HEARTBEAT_NS, STARTED_NS, RESTARTS = _WORD["pid"], _WORD["heartbeat_ns"], _WORD["started_ns"], _WORD["restarts"]
STATE, WORK_COUNT, IDLE_COUNT, CPU = _WORD["state"], _WORD["work_count"], _WORD["idle_count"], _WORD["cpu"]
COMMAND, EXIT_CODE, COUNTERS = _WORD["command"], _WORD["exit_code"], _WORD["counters"]
MAX_COUNTERS = 32


class StatusTable:
    def __init__(self, segment, n_rows: int, owner: bool):
        self.segment = segment
        self.n_rows = n_rows
        self.owner = owner
        # int64 words: the runner writes single words (heartbeat, counts) without structured-field overhead
        self.words = np.ndarray((n_rows, WORDS_PER_ROW), dtype=np.int64, buffer=segment.buf)
        self.rows = np.ndarray((n_rows,), dtype=STATUS_LAYOUT.dtype, buffer=segment.buf)

    @property
    def name(self) -> str:
        return self.segment.name

    @classmethod
    def create(cls, name: str, n_rows: int) -> "StatusTable":
        segment = segments.create(name, max(1, n_rows) * STATUS_LAYOUT.itemsize)
        table = cls(segment, n_rows, owner=True)
        table.words[:] = 0
        table.words[:, CPU] = -1
        return table

    @classmethod
    def attach(cls, name: str, n_rows: int) -> "StatusTable":
        return cls(segments.attach(name), n_rows, owner=False)

    def counters(self, row: int) -> np.ndarray:
        return self.words[row, COUNTERS:COUNTERS + MAX_COUNTERS]

    def close(self) -> None:
        self.words = None
        self.rows = None
        self.segment.close()

    def unlink(self) -> None:
        if self.owner:
            self.segment.unlink()
