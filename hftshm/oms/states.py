"""The order state machine: which event is legal in which state, and where it leads.

``TRANSITIONS`` below is the one declaration; ``NEXT_STATE`` is the same table as a 2-D int8 array
(``NEXT_STATE[state, event_kind]`` -> next state, 0 = illegal) that the numba kernels index. An
event that maps to 0 is refused: the OMS records it (``OrderEventKind.REFUSED``, reason
``illegal_transition``) and leaves the order as it was.

Rules of thumb the table encodes:

- an exchange can report a fill before its ack (NEW -> PARTIALLY_FILLED / FILLED);
- a resend can produce a second ack for an order already acked or part-filled: harmless, kept;
- while a cancel is pending the order still fills; a PARTIAL leaves it PENDING_CANCEL;
- a refused cancel returns the order to ACKNOWLEDGED, which the kernel turns into
  PARTIALLY_FILLED when the order has fills (``normalize`` below; the table cannot see cum_qty);
- a replace changes price/qty in place (the exchange keeps the order id): REPLACED is a working
  state, like ACKNOWLEDGED, and the request itself leaves the state as it was until confirmed;
- an unconfirmed cancel or replace after the last retry is an alert, not a state change: the
  order may well be working, so only the exchange's next report may move it;
- FILLED, CANCELLED and REJECTED are terminal: nothing is legal after them.
"""

from __future__ import annotations

import numpy as np

from hftshm.codes import OrderEventKind as E
from hftshm.codes import OrderState as S

NO_STATE = 0  # "the order does not exist yet": the row CREATED starts from

TRANSITIONS: tuple[tuple[int, E, S], ...] = (
    # from state         event                  to state
    (NO_STATE,           E.CREATED,             S.NEW),
    (S.NEW,              E.RESENT,              S.NEW),
    (S.NEW,              E.ACK,                 S.ACKNOWLEDGED),
    (S.NEW,              E.REJECT,              S.REJECTED),
    (S.NEW,              E.PARTIAL,             S.PARTIALLY_FILLED),  # the fill overtook the ack
    (S.NEW,              E.FILL,                S.FILLED),
    (S.NEW,              E.CANCELLED,           S.CANCELLED),  # e.g. an IOC with nothing left
    (S.NEW,              E.CANCEL_REQUESTED,    S.PENDING_CANCEL),
    (S.NEW,              E.RETRIES_EXHAUSTED,   S.REJECTED),
    (S.ACKNOWLEDGED,     E.ACK,                 S.ACKNOWLEDGED),  # re-ack of a resend
    (S.ACKNOWLEDGED,     E.PARTIAL,             S.PARTIALLY_FILLED),
    (S.ACKNOWLEDGED,     E.FILL,                S.FILLED),
    (S.ACKNOWLEDGED,     E.CANCELLED,           S.CANCELLED),
    (S.ACKNOWLEDGED,     E.CANCEL_REQUESTED,    S.PENDING_CANCEL),
    (S.ACKNOWLEDGED,     E.REPLACE_REQUESTED,   S.ACKNOWLEDGED),
    (S.ACKNOWLEDGED,     E.REPLACED,            S.REPLACED),
    (S.ACKNOWLEDGED,     E.REQUEST_REJECTED,    S.ACKNOWLEDGED),
    (S.ACKNOWLEDGED,     E.RESENT,              S.ACKNOWLEDGED),  # a replace, sent again
    (S.ACKNOWLEDGED,     E.RETRIES_EXHAUSTED,   S.ACKNOWLEDGED),  # a replace went unconfirmed: alert only
    (S.PARTIALLY_FILLED, E.ACK,                 S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, E.PARTIAL,             S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, E.FILL,                S.FILLED),
    (S.PARTIALLY_FILLED, E.CANCELLED,           S.CANCELLED),
    (S.PARTIALLY_FILLED, E.CANCEL_REQUESTED,    S.PENDING_CANCEL),
    (S.PARTIALLY_FILLED, E.REPLACE_REQUESTED,   S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, E.REPLACED,            S.REPLACED),
    (S.PARTIALLY_FILLED, E.REQUEST_REJECTED,    S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, E.RESENT,              S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, E.RETRIES_EXHAUSTED,   S.PARTIALLY_FILLED),
    (S.REPLACED,         E.ACK,                 S.REPLACED),
    (S.REPLACED,         E.PARTIAL,             S.PARTIALLY_FILLED),
    (S.REPLACED,         E.FILL,                S.FILLED),
    (S.REPLACED,         E.CANCELLED,           S.CANCELLED),
    (S.REPLACED,         E.CANCEL_REQUESTED,    S.PENDING_CANCEL),
    (S.REPLACED,         E.REPLACE_REQUESTED,   S.REPLACED),
    (S.REPLACED,         E.REPLACED,            S.REPLACED),
    (S.REPLACED,         E.REQUEST_REJECTED,    S.REPLACED),
    (S.REPLACED,         E.RESENT,              S.REPLACED),
    (S.REPLACED,         E.RETRIES_EXHAUSTED,   S.REPLACED),
    (S.PENDING_CANCEL,   E.RESENT,              S.PENDING_CANCEL),  # the cancel, sent again
    (S.PENDING_CANCEL,   E.ACK,                 S.PENDING_CANCEL),  # the order's ack, overtaken by our cancel
    (S.PENDING_CANCEL,   E.PARTIAL,             S.PENDING_CANCEL),  # fills go on until the cancel lands
    (S.PENDING_CANCEL,   E.FILL,                S.FILLED),
    (S.PENDING_CANCEL,   E.CANCELLED,           S.CANCELLED),
    (S.PENDING_CANCEL,   E.REQUEST_REJECTED,    S.ACKNOWLEDGED),  # normalized to PARTIALLY_FILLED if filled
    (S.PENDING_CANCEL,   E.REJECT,              S.REJECTED),  # the order itself was rejected, before any ack
    (S.PENDING_CANCEL,   E.RETRIES_EXHAUSTED,   S.PENDING_CANCEL),  # cancel unconfirmed: alert, stay pending
)

TERMINAL_STATES = frozenset({S.FILLED, S.CANCELLED, S.REJECTED})
OPEN_STATES = frozenset(set(S) - TERMINAL_STATES)


def _build_table() -> np.ndarray:
    table = np.zeros((max(S) + 1, max(E) + 1), dtype=np.int8)
    for from_state, event, to_state in TRANSITIONS:
        if table[from_state, event]:
            raise ValueError(f"transition ({from_state}, {event.name}) is declared twice")
        table[from_state, event] = to_state
    for state in TERMINAL_STATES:
        if table[state].any():
            raise ValueError(f"terminal state {state.name} has a transition out of it")
    return table


#: NEXT_STATE[state, event_kind] -> next state; 0 means the event is illegal in that state
NEXT_STATE: np.ndarray = _build_table()
NEXT_STATE.setflags(write=False)

#: IS_TERMINAL[state] -> 1 when nothing is legal after it
IS_TERMINAL: np.ndarray = np.zeros(max(S) + 1, dtype=np.int8)
for _state in TERMINAL_STATES:
    IS_TERMINAL[_state] = 1
IS_TERMINAL.setflags(write=False)


def next_state(state: int, event: int) -> int:
    """The state after ``event`` in ``state``; 0 when the event is illegal there."""
    return int(NEXT_STATE[state, event])


def normalize(state: int, cum_qty: float) -> int:
    """An order with fills that would be ACKNOWLEDGED is PARTIALLY_FILLED (after a refused cancel)."""
    if state == S.ACKNOWLEDGED and cum_qty > 0.0:
        return int(S.PARTIALLY_FILLED)
    return state


def replay(events: list[int], cum_qtys: list[float] | None = None) -> int:
    """The state a sequence of event kinds leads to from nothing; REFUSED events change nothing.

    Raises ValueError on an illegal step: used to check that a persisted history is consistent.
    """
    state = NO_STATE
    for i, event in enumerate(events):
        if event == E.REFUSED:
            continue
        nxt = int(NEXT_STATE[state, event])
        if nxt == 0:
            from_name = S(state).name if state else "NO_STATE"
            raise ValueError(f"event #{i} {E(event).name} is illegal in state {from_name}")
        state = normalize(nxt, cum_qtys[i] if cum_qtys is not None else 0.0)
    return state
