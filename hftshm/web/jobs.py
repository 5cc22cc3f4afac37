"""Backtests as jobs: ``POST /api/backtest`` queues one, a worker thread runs it, GET reads it.

The runner is any callable ``runner(params: dict) -> dict`` (a JSON-able result) supplied to the
app factory; the strategies' backtest engine provides it. If the runner has a ``validate(params)``
attribute it is called at submit time, so bad parameters are a 400 now, not a failed job later.
Jobs run one at a time by default: a backtest is CPU-bound and the machine also runs the platform.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

log = logging.getLogger("hftshm.web.jobs")

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"


class QueueFull(RuntimeError):
    pass


class BacktestJobs:
    def __init__(self, runner: Callable[[dict], dict], *, max_workers: int = 1, max_pending: int = 16, keep: int = 200):
        self.runner = runner
        self.max_pending = max_pending
        self.keep = keep
        self._jobs: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="backtest")

    def validate(self, params: dict) -> dict:
        validate = getattr(self.runner, "validate", None)
        return validate(params) if validate is not None else params

    def submit(self, params: dict, submitted_by: str) -> dict:
        with self._lock:
            pending = sum(1 for j in self._jobs.values() if j["state"] in (QUEUED, RUNNING))
            if pending >= self.max_pending:
                raise QueueFull(f"{pending} backtests are queued or running; at most {self.max_pending}")
            job_id = uuid.uuid4().hex[:16]
            job = {"id": job_id, "state": QUEUED, "params": params, "submitted_by": submitted_by,
                   "submitted_unix_ns": time.time_ns(), "started_unix_ns": None, "finished_unix_ns": None,
                   "result": None, "error": None}
            self._jobs[job_id] = job
            self._trim()
        self._pool.submit(self._run, job_id)
        return dict(job)

    def _run(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs[job_id]
            job["state"], job["started_unix_ns"] = RUNNING, time.time_ns()
            params = job["params"]
        try:
            result = self.runner(params)
            update = {"state": SUCCEEDED, "result": result}
        except (ValueError, KeyError) as exc:
            update = {"state": FAILED, "error": str(exc)}
        except Exception as exc:  # a job must never take the server down
            log.error("backtest %s failed:\n%s", job_id, traceback.format_exc())
            update = {"state": FAILED, "error": f"{type(exc).__name__}: {exc}"}
        with self._lock:
            job.update(update, finished_unix_ns=time.time_ns())

    def _trim(self) -> None:
        finished = [j for j in self._jobs.values() if j["state"] in (SUCCEEDED, FAILED)]
        for job in sorted(finished, key=lambda j: j["submitted_unix_ns"])[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[job["id"]]

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return dict(job) if job else None

    def list(self) -> list[dict]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j["submitted_unix_ns"], reverse=True)
            return [{k: v for k, v in j.items() if k != "result"} for j in jobs]

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)
