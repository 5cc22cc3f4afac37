"""The audit of operator control actions: a local journal first, the OMS database behind it.

Every control action (kill switch, trading state, limits, strategy add/remove/pause/resume, backtest
submissions, refused logins) becomes one ``AuditEntry``. ``AuditLog.record`` appends it to
``<run_dir>/audit-journal.jsonl`` (one JSON line, fsync'd, under an flock shared by every process:
CLI, web server, supervisor) and returns: the control it describes has already been applied and
never waits for a database. ``AuditLog.drain`` then moves the journal's lines into the
``control_audit`` table of the OMS database (SQLite or PostgreSQL) and empties the journal; while the
database is down the lines stay in the journal and the next drain (a later command, the web
server's drain thread, the supervisor's control watcher) delivers them. Rows carry a random id and
are inserted only if absent, so a drain interrupted after the insert and before the truncate
delivers each row once.

Nothing here is on a trading hot path: workers never audit.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("hftshm.audit")

JOURNAL_FILE = "audit-journal.jsonl"
TABLE = "control_audit"
SOURCES = ("api", "cli", "redis", "platform")
OUTCOMES = ("applied", "refused")
COLUMNS = ("id", "ts_unix_ns", "action", "target", "actor", "role", "source", "previous", "new", "outcome",
           "detail")


@dataclass(frozen=True)
class AuditEntry:
    """One control action. ``previous``/``new`` are short strings ("on"/"off", "active", a limit's
    value); ``detail`` says why it was refused, or anything else worth keeping (a reason given)."""

    action: str  # kill_switch, trading_state, limit, strategy_add, strategy_pause, backtest_submit, login ...
    actor: str  # token subject, OS user, or "redis"
    source: str  # api | cli | redis | platform
    outcome: str = "applied"  # applied | refused
    role: str = ""
    target: str = ""  # what was acted on: a strategy name, a limit's key
    previous: str = ""
    new: str = ""
    detail: str = ""
    ts_unix_ns: int = field(default_factory=time.time_ns)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"audit source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"audit outcome must be one of {', '.join(OUTCOMES)}, not {self.outcome!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def os_user() -> str:
    """The CLI's actor: the OS user running the command."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still identifies the account
        return f"uid:{os.getuid()}"


class AuditDatabase:
    """The ``control_audit`` table in the OMS database (created on first use)."""

    def __init__(self, url: str, schema: str = "", connect_timeout_s: float = 2.0):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        args: dict = {}
        if self.dialect == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            args["connect_timeout"] = max(1, int(connect_timeout_s))
            if schema:
                args["options"] = f"-csearch_path={schema}"
        else:
            args["timeout"] = 10
        self.url = parsed.render_as_string(hide_password=True)
        self.engine = create_engine(parsed, connect_args=args, pool_pre_ping=True)
        self._ready = False

    def close(self) -> None:
        self.engine.dispose()

    def _ensure(self, conn) -> None:
        from sqlalchemy import text

        if self._ready:
            return
        conn.execute(text(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id VARCHAR(32) PRIMARY KEY, ts_unix_ns BIGINT NOT NULL, "
            "action VARCHAR(40) NOT NULL, target VARCHAR(200) NOT NULL, actor VARCHAR(200) NOT NULL, "
            "role VARCHAR(40) NOT NULL, source VARCHAR(16) NOT NULL, previous VARCHAR(400) NOT NULL, "
            "new VARCHAR(400) NOT NULL, outcome VARCHAR(16) NOT NULL, detail VARCHAR(1000) NOT NULL)"))
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS {TABLE}_ts ON {TABLE} (ts_unix_ns)"))
        self._ready = True

    def insert(self, rows: list[dict]) -> int:
        """Insert rows not already present (by id); the number inserted."""
        from sqlalchemy import text

        if not rows:
            return 0
        cols = ", ".join(COLUMNS)
        values = ", ".join(f":{c}" for c in COLUMNS)
        sql = text(f"INSERT INTO {TABLE} ({cols}) VALUES ({values}) ON CONFLICT (id) DO NOTHING")
        with self.engine.begin() as conn:
            self._ensure(conn)
            result = conn.execute(sql, [{c: _clip(row.get(c, ""), c) for c in COLUMNS} for row in rows])
        return max(result.rowcount, 0)

    def rows(self, *, limit: int = 100, offset: int = 0, action: str | None = None, source: str | None = None,
             outcome: str | None = None) -> tuple[list[dict], int]:
        """A page of rows, newest first, and the total matching the filters."""
        from sqlalchemy import text

        where, params = [], {"limit": limit, "offset": offset}
        for column, value in (("action", action), ("source", source), ("outcome", outcome)):
            if value is not None:
                where.append(f"{column} = :{column}")
                params[column] = value
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.engine.begin() as conn:
            self._ensure(conn)
            total = conn.execute(text(f"SELECT COUNT(*) FROM {TABLE} {clause}"), params).scalar_one()
            result = conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} {clause} "
                                       "ORDER BY ts_unix_ns DESC, id LIMIT :limit OFFSET :offset"), params)
            rows = [dict(zip(COLUMNS, r)) for r in result]
        return rows, int(total)


def _clip(value, column: str):
    if column == "ts_unix_ns":
        return int(value)
    limit = {"id": 32, "action": 40, "role": 40, "source": 16, "outcome": 16, "detail": 1000}.get(column, 200)
    limit = 400 if column in ("previous", "new") else limit
    return str(value)[:limit]


class AuditLog:
    """Journal + database. ``record`` never blocks on the database; ``drain`` delivers the journal."""

    def __init__(self, run_dir: str | Path, database_url: str, schema: str = ""):
        self.run_dir = Path(run_dir)
        self.journal = self.run_dir / JOURNAL_FILE
        self.database_url = database_url
        self.schema = schema
        self._db: AuditDatabase | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.last_error = ""

    @classmethod
    def for_config(cls, config, run_dir: str | Path | None = None) -> "AuditLog":
        """The audit of a platform config: the journal in its run dir, the table in its OMS database."""
        run_dir = Path(run_dir or config.platform.run_dir)
        return cls(run_dir, config.oms.database_url_for(run_dir), config.oms.database_schema)

    @property
    def db(self) -> AuditDatabase:
        if self._db is None:
            self._db = AuditDatabase(self.database_url, self.schema)
        return self._db

    # -- writing ---------------------------------------------------------------------------------

    @contextmanager
    def _locked(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / (JOURNAL_FILE + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def record(self, entry: AuditEntry) -> AuditEntry:
        """Append ``entry`` to the journal (durable on return) and wake the drain thread if any."""
        line = json.dumps(entry.to_dict(), separators=(",", ":")) + "\n"
        with self._locked():
            with open(self.journal, "a", encoding="utf-8") as out:
                out.write(line)
                out.flush()
                os.fsync(out.fileno())
        self._wake.set()
        return entry

    def pending(self) -> list[dict]:
        """Journal lines not yet in the database."""
        with self._locked():
            return self._read_journal()

    def _read_journal(self) -> list[dict]:
        if not self.journal.exists():
            return []
        rows = []
        for number, line in enumerate(self.journal.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:  # a torn last line (power cut mid-append): keep the rest, say so
                log.error("audit journal %s line %d is not JSON; skipped", self.journal, number)
        return rows

    def drain(self) -> int:
        """Move the journal into the database; the number of rows delivered. Raises if the database
        is unreachable (the journal is kept)."""
        with self._locked():
            rows = self._read_journal()
            if not rows:
                return 0
            self.db.insert(rows)
            self.journal.write_text("", encoding="utf-8")
        return len(rows)

    def try_drain(self) -> bool:
        """``drain`` that logs instead of raising; True if the journal is empty afterwards."""
        try:
            self.drain()
            if self.last_error:
                log.warning("audit database reachable again; journal delivered")
            self.last_error = ""
            return True
        except Exception as exc:  # noqa: BLE001 - any database failure: keep the journal, retry later
            message = f"audit rows wait in {self.journal}: database {self.db.url} unreachable ({exc.__class__.__name__})"
            if message != self.last_error:
                log.warning("%s", message)
            self.last_error = message
            return False

    # -- the drain thread (web server, supervisor) -------------------------------------------------

    def start(self, interval_s: float = 1.0) -> None:
        """Drain in a daemon thread: at once after each ``record``, and every ``interval_s``."""
        if self._thread is not None:
            return

        def run():
            while not self._stop.is_set():
                self._wake.clear()
                if self.journal.exists() and self.journal.stat().st_size:
                    self.try_drain()
                self._wake.wait(interval_s)

        self._thread = threading.Thread(target=run, name="hftshm-audit-drain", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.try_drain()

    def close(self) -> None:
        self.stop()
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- reading ---------------------------------------------------------------------------------

    def rows(self, **filters) -> tuple[list[dict], int]:
        """A page of the audit, newest first: delivered rows, after draining what is pending. While
        the database is down, the journal's rows (marked ``"pending": true``) so nothing is hidden."""
        if self.try_drain():
            return self.db.rows(**filters)
        limit, offset = filters.get("limit", 100), filters.get("offset", 0)
        rows = [dict(r, pending=True) for r in reversed(self.pending())
                if all(filters.get(k) is None or r.get(k) == filters[k] for k in ("action", "source", "outcome"))]
        return rows[offset: offset + limit], len(rows)
