"""Every enumerated kind and state, in one place.

numba treats ``IntEnum`` members as compile-time constants, so kernels use these directly
(``if kind == EventKind.TRADE``) and the records carry their integer values. CSV and JSON use the
lower-case member names (``Reason.POST_ONLY_WOULD_CROSS`` <-> ``post_only_would_cross``).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class EventKind(IntEnum):
    DEPTH = 1  # one price level changed (qty 0 deletes it)
    TRADE = 2  # a trade; side is the aggressor's
    BBO = 3  # one side of the exchange's own best bid/offer
    SNAPSHOT = 4  # one level of a full book snapshot; levels of one snapshot follow a CLEAR
    CLEAR = 5  # the book is cleared (start of a snapshot, or invalid after a gap)
    END_OF_DATA = 6  # deterministic runs: the data has ended and every stage has settled (no book change)


class EventFlag(IntFlag):
    NONE = 0
    LAST_IN_MESSAGE = 1  # last level record of one exchange message: the book is consistent here
    BOOK_INVALID = 2  # a gap was seen; the book is not trustworthy until the next snapshot
    END_OF_DATA = 4  # the feed has no more data (a watermark for drain and parity)


class Side(IntEnum):
    NONE = 0
    BUY = 1  # bid side for depth, buyer-aggressor for trades
    SELL = 2


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2


class TimeInForce(IntEnum):
    GTC = 1
    IOC = 2
    FOK = 3
    POST_ONLY = 4


class Action(IntEnum):
    NEW = 1
    CANCEL = 2
    REPLACE = 3
    # OMS -> exchange only, never an intent: the OMS has heard of exchange session ``client_order_id``
    # (a ReportEvent.SESSION) and has cancelled every order of the sessions before it; the exchange
    # ignores every order sent before this record (it was meant for a session that is gone)
    LOGON = 4


class ReportEvent(IntEnum):
    ACK = 1
    REJECT = 2
    PARTIAL = 3
    FILL = 4
    CANCEL = 5
    REPLACE = 6
    # exchange -> OMS only, no order: the exchange started session ``client_order_id`` after an earlier
    # one ended (a restart). Every order of the earlier session is gone (cancel-on-disconnect) and the
    # exchange ignores orders until the OMS answers with Action.LOGON
    SESSION = 7
    # not about an order: deterministic runs only. "Every report due by market time exch_ts_ns has
    # been sent before this record" (hftshm.runtime.lockstep); consumers skip it otherwise
    WATERMARK = 15


class Reason(IntEnum):
    """Why an order was rejected or cancelled, by whichever stage decided it."""

    NONE = 0
    # exchange
    UNKNOWN_ORDER = 1
    BAD_PRICE = 2
    BAD_QTY = 3
    POST_ONLY_WOULD_CROSS = 4
    FOK_CANNOT_FILL = 5
    BOOK_FULL = 6
    UNKNOWN_SYMBOL = 7
    STP = 8  # self-trade prevention cancelled the resting order
    USER_CANCEL = 9
    IOC_REMAINDER = 10
    DUPLICATE_ORDER_ID = 11  # a new order reused the id of a live order
    MALFORMED_ORDER = 12  # action, side, order type or time in force is not a known code
    VENUE_RESTART = 13  # the exchange session the order lived in ended (cancel-on-disconnect); the OMS cancels it
    MARKET_CLOSED = 14  # a new order or replace reached the simulated exchange after the data ended
    # risk
    MAX_ORDER_SIZE = 20
    MAX_POSITION = 21
    MAX_DAILY_LOSS = 22
    THROTTLE = 23
    PRICE_BAND = 24
    KILL_SWITCH = 25
    TRADING_HALTED = 26
    REDUCE_ONLY = 27
    MAX_OPEN_ORDERS = 28  # risk's open-order table is full
    MALFORMED_INTENT = 29  # side, action or order type is not a known code
    # oms
    DUPLICATE_CLIENT_ORDER_ID = 40
    ILLEGAL_TRANSITION = 41
    RETRIES_EXHAUSTED = 42
    BACKLOG_FULL = 43
    STALE_REPORT = 44  # a report the order already reflects (its cum_qty is not beyond the order's): a replay
    OMS_TABLE_FULL = 45  # the OMS order table has no free slot


class OrderState(IntEnum):
    NEW = 1
    ACKNOWLEDGED = 2
    PARTIALLY_FILLED = 3
    FILLED = 4
    CANCELLED = 5
    REJECTED = 6
    PENDING_CANCEL = 7
    REPLACED = 8


class TradingState(IntEnum):
    ACTIVE = 0
    REDUCING = 1  # only orders that reduce a position pass
    HALTED = 2  # only cancels pass


class ControlKind(IntEnum):
    KILL_SWITCH = 1  # value_i: 1 on, 0 off
    TRADING_STATE = 2  # value_i: TradingState
    STRATEGY_PAUSE = 3  # target_id: strategy id
    STRATEGY_RESUME = 4
    STRATEGY_ADD = 5
    STRATEGY_REMOVE = 6
    DRAIN = 7  # stop producing, finish what is queued


class WorkerState(IntEnum):
    STOPPED = 0
    STARTING = 1
    RUNNING = 2
    DRAINING = 3
    FAILED = 4
    FINISHED = 5  # a finite producer reached the end of its data and is idle


def code_name(code: IntEnum) -> str:
    """The CSV/JSON spelling of a code: ``Reason.POST_ONLY_WOULD_CROSS`` -> ``post_only_would_cross``."""
    return code.name.lower()


def parse_code(enum: type[IntEnum], text: str, what: str) -> IntEnum:
    """The member of ``enum`` spelled ``text`` (any case); a ValueError naming the allowed values otherwise."""
    try:
        return enum[text.strip().upper()]
    except KeyError:
        allowed = ", ".join(code_name(m) for m in enum)
        raise ValueError(f"{what} {text!r} is not one of: {allowed}") from None


class WorkerCommand(IntEnum):
    """What the supervisor asks of a worker through its status row (``worker_status.command``)."""

    RUN = 0
    DRAIN = 1  # stop producing new work, consume what is queued, then close
    STOP = 2  # close now
    # stop producing new work but keep consuming, and do not close: phase one of a drain, held until
    # the whole pipeline is quiet (replies to a worker's last requests still reach it), then DRAIN
    QUIESCE = 3


class StrategyState(IntEnum):
    """A strategy slot's state in the strategy runtime (``strategy_status.state``)."""

    EMPTY = 0
    RUNNING = 1
    PAUSED = 2  # by an operator; resumes on STRATEGY_RESUME
    FAILED = 3  # raised or was given bad parameters; paused until resumed
    REMOVED = 4


class OrderEventKind(IntEnum):
    """What happened to an order, as the OMS audit trail records it (``order_event.kind``).

    ``hftshm.oms.states`` declares which kinds are legal in which state; REFUSED records an event
    that was not applied (its ``reason`` says why: illegal transition, duplicate, stale report).
    """

    CREATED = 1  # accepted by the OMS and sent to the exchange (attempt 0)
    RESENT = 2  # no confirmation within the timeout: the pending request sent again (attempt n)
    ACK = 3
    REJECT = 4
    PARTIAL = 5
    FILL = 6
    CANCEL_REQUESTED = 7
    CANCELLED = 8
    REPLACE_REQUESTED = 9
    REPLACED = 10  # price/qty changed in place; the order keeps its id and keeps working
    REQUEST_REJECTED = 11  # the exchange refused our cancel or replace; the order still works
    RETRIES_EXHAUSTED = 12
    REFUSED = 13


class FrameKind(IntEnum):
    """What a ``live_frame`` record carries from the live feed's network process to the feed."""

    FRAME = 1  # a websocket frame as received
    SNAPSHOT = 2  # a REST depth snapshot, wrapped as a combined-stream frame (live_record.wrap_snapshot)
    DISCONNECT = 3  # the market's connection ended (no bytes): its books are invalid until resynced
