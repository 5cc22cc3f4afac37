"""``VenueSession``: what a restarted exchange worker tells the OMS, and which orders it takes after.

The simulated exchange keeps its resting orders in process memory. A restarted exchange worker
does what a real venue does when a client's connection drops: every order of the old session is
gone (cancel-on-disconnect), and the new session says so.

- Each start of the exchange worker is a session, numbered in the worker's status row (it outlives
  the process): 1 for the first start of a run, 2 after the first restart, ...
- The first session is the run's first contact: nothing to announce, orders are taken at once.
- A later session publishes, before any other report, one ``execution_report`` with ``event =
  ReportEvent.SESSION``, ``order_id = 0``, ``client_order_id`` = the session number and
  ``exch_ts_ns`` = when it started (wall clock: unique across runs on one database, unlike the
  number; the OMS stamps the cancels it causes with it). It then ignores every order record until
  the OMS's answer arrives on the order ring: a record with ``action = Action.LOGON`` and the same
  ``client_order_id``. The OMS sends it after it has cancelled every order it had open (reason
  ``venue_restart``) and told risk and the strategies.

Why ignore what comes before the answer: the order ring resumes at its released cursor, so orders
the dead process had read but not released arrive again, and the OMS keeps sending (and resending)
until it has read the announcement. All of those were sent into the old session, and the OMS
cancels every one of them; applying them would open orders that nobody else holds open. The ring
is FIFO, so the answer cuts the stream exactly: before it, the old session; after it, the new one.
"""

from __future__ import annotations

import numpy as np

from hftshm.codes import Action, Reason, ReportEvent
from hftshm.exchange.engine import REPORT_DTYPE


class VenueSession:
    def __init__(self, number: int):
        if number < 1:
            raise ValueError(f"an exchange session number starts at 1, got {number}")
        self.number = int(number)
        # the first session of a run needs no answer: nothing was sent into an earlier one
        self.logged_on = self.number == 1
        self.ignored = 0  # order records sent into an earlier session, not applied

    @property
    def announces(self) -> bool:
        """Whether this session must tell the OMS it started (it follows an earlier one)."""
        return self.number > 1

    def announcement(self, started_ns: int) -> np.ndarray:
        """The one report that opens a session after a restart (``started_ns``: wall clock)."""
        report = np.zeros(1, dtype=REPORT_DTYPE)
        report["exch_ts_ns"] = started_ns
        report["event"] = ReportEvent.SESSION
        report["client_order_id"] = self.number
        report["reason"] = Reason.VENUE_RESTART
        return report

    def admit(self, view: np.ndarray) -> np.ndarray:
        """The orders of ``view`` that belong to this session (LOGON records themselves removed)."""
        logon = view["action"] == Action.LOGON
        if not self.logged_on:
            ours = np.flatnonzero(logon & (view["client_order_id"] == self.number))
            if not len(ours):
                self.ignored += int((~logon).sum())
                return view[:0]
            first = int(ours[0])
            self.ignored += int((~logon[:first]).sum())
            self.logged_on = True
            view, logon = view[first + 1:], logon[first + 1:]
        # a LOGON repeated after a crash of the OMS changes nothing
        return view[~logon] if logon.any() else view
