"""Why a book rejected an event, or what it noticed while applying one; counted per book by reason."""

from __future__ import annotations

from enum import IntEnum


class BookIssue(IntEnum):
    NONE = 0
    # rejected: the event is not applied
    UNKNOWN_SYMBOL = 1  # symbol id has no book
    UNKNOWN_KIND = 2
    BAD_SIDE = 3
    NAN_OR_INF_PRICE = 4
    NAN_OR_INF_QTY = 5
    NON_POSITIVE_PRICE = 6
    NEGATIVE_QTY = 7
    OFF_TICK = 8  # price is not a multiple of the symbol's tick size
    OFF_LOT = 9  # quantity is not a multiple of the symbol's lot size
    PRICE_OUT_OF_RANGE = 10  # more ticks than int64 arithmetic can hold exactly
    FAR_LEVELS_FULL = 11  # no room left for a level far from the touch (grow far_capacity)
    # noticed: the event is applied
    CROSSED = 20  # best bid > best ask after a message
    LOCKED = 21  # best bid == best ask after a message
    EXCH_TS_BACKWARDS = 22  # book-changing event earlier (exchange time) than the previous one
    LOCAL_TS_BACKWARDS = 23  # event earlier (local time) than the previous one of the symbol
    UPDATE_ID_BACKWARDS = 24  # depth update id below the previous depth update id
    DEPTH_WHILE_INVALID = 25  # depth applied to a book with no snapshot since start or since a gap
    GAP_CLEAR = 26  # the feed reported a gap (clear with BOOK_INVALID)


REJECTS = tuple(i for i in BookIssue if 0 < i < 20)
NOTICES = tuple(i for i in BookIssue if i >= 20)
N_BOOK_ISSUES = 32
