"""Logging: one file per worker under ``<run_dir>/logs``, level from config or ``HFTSHM_LOG``.

Lines are ``<ISO time> <LEVEL> <worker> pid=<pid> <message>``: one grep finds a worker's story.
Nothing logs on a hot path; workers count there and log state changes only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

LEVELS = ("debug", "info", "warning", "error")
_FORMAT = "%(asctime)s %(levelname)s %(worker)s pid=%(process)d %(message)s"


class _WorkerFilter(logging.Filter):
    def __init__(self, worker: str):
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "worker"):
            record.worker = self.worker
        return True


def level_from(config_level: str | None) -> int:
    name = (os.environ.get("HFTSHM_LOG") or config_level or "info").lower()
    if name not in LEVELS:
        raise ValueError(f"log level {name!r} (platform.log_level or HFTSHM_LOG) is not one of: {', '.join(LEVELS)}")
    return getattr(logging, name.upper())


def logs_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "logs"


def worker_logger(run_dir: str | Path, worker: str, level: int) -> logging.Logger:
    """A logger writing to ``<run_dir>/logs/<worker>.log`` (appending across restarts)."""
    directory = logs_dir(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"hftshm.worker.{worker}")
    logger.setLevel(level)
    logger.propagate = False
    if not logger.handlers:
        handler = logging.FileHandler(directory / f"{worker}.log")
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(_WorkerFilter(worker))
        logger.addHandler(handler)
    return logger


def setup_process_logging(run_dir: str | Path, name: str, level: int) -> logging.Logger:
    """Route the root and ``hftshm.*`` loggers of a worker process to ``<run_dir>/logs/<name>.log``."""
    logger = worker_logger(run_dir, name, level)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in logger.handlers:
        root.addHandler(handler)
    return logger


def setup_supervisor_logging(run_dir: str | Path, level: int) -> None:
    """The supervisor's own log, ``<run_dir>/logs/supervisor.log``; warnings also reach the terminal."""
    directory = logs_dir(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("hftshm")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    to_file = logging.FileHandler(directory / "supervisor.log")
    to_file.setFormatter(logging.Formatter(_FORMAT))
    to_file.addFilter(_WorkerFilter("supervisor"))
    logger.addHandler(to_file)
    to_terminal = logging.StreamHandler()
    to_terminal.setLevel(logging.WARNING)
    to_terminal.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(to_terminal)
