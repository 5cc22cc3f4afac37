"""The deterministic import's message framing and book matching (``hftshm.bridge.lockstep_import``),
without NATS: records queued as the NATS thread queues them."""

from hftshm.bridge.lockstep_import import LockstepImportWorker, _Subject
from hftshm.codes import EventFlag, EventKind
from hftshm.transport import layout

EVENTS = layout.load("market_event")
BOOKS = layout.load("book_snapshot")
LAST = int(EventFlag.LAST_IN_MESSAGE)


def _events(rows, kind=EventKind.DEPTH):
    """rows: (exch_ts_ns, update_id, last in message)"""
    records = EVENTS.zeros(len(rows))
    for i, (ts, update_id, last) in enumerate(rows):
        records[i]["exch_ts_ns"], records[i]["update_id"], records[i]["symbol_id"] = ts, update_id, 1
        records[i]["flags"] = LAST if last else 0
        records[i]["kind"] = kind
    return records


def _book(ts, update_id):
    record = BOOKS.zeros(1)
    record["exch_ts_ns"], record["update_id"], record["symbol_id"] = ts, update_id, 1
    return record


def test_a_message_spanning_batches_is_framed_whole():
    source = _Subject("s", EVENTS, 0)
    source.put(_events([(1, 10, False), (1, 10, False)]))
    assert source.next_message() is None  # its last record has not arrived
    source.put(_events([(1, 10, True), (2, 11, True)]))
    message = source.next_message()
    assert len(message) == 3 and message["update_id"].tolist() == [10, 10, 10]
    source.take(3)
    assert source.next_message()["update_id"].tolist() == [11]


def test_a_restarted_import_skips_what_its_rings_hold():
    source = _Subject("s", EVENTS, 2)
    source.put(_events([(1, 10, True), (2, 11, True), (3, 12, True)]))
    assert source.next_message()["update_id"].tolist() == [12]
    assert source.taken == 2 and source.appended == 3


def test_a_snapshot_goes_with_the_message_that_made_it_even_when_older():
    worker = LockstepImportWorker({})
    worker.events = _Subject("md", EVENTS, 0)
    worker.books = _Subject("book", BOOKS, 0)
    # diffs buffered before a REST snapshot are younger than the snapshot message (exch time 501)
    worker.events.put(_events([(567, 20, True), (501, 15, False), (501, 15, True)]))
    worker.books.put(_book(501, 15))
    first = worker.events.next_message()
    assert len(worker._books_of(first)) == 0  # the older snapshot is not this message's
    worker.events.take(len(first))
    second = worker.events.next_message()
    assert worker._books_of(second)["update_id"].tolist() == [15]


def test_a_message_waits_until_the_book_subject_can_tell():
    worker = LockstepImportWorker({})
    worker.events = _Subject("md", EVENTS, 0)
    worker.books = _Subject("book", BOOKS, 0)
    worker.events.put(_events([(5, 30, True)]))
    message = worker.events.next_message()
    assert worker._books_of(message) is None  # no snapshot yet: it might still be this message's
    worker.books.ended = True
    assert len(worker._books_of(message)) == 0


def test_a_book_ticker_with_its_depth_updates_id_and_time_gets_no_snapshot():
    worker = LockstepImportWorker({})
    worker.events = _Subject("md", EVENTS, 0)
    worker.books = _Subject("book", BOOKS, 0)
    worker.events.put(_events([(7, 40, False), (7, 40, True)], kind=EventKind.BBO))
    worker.events.put(_events([(7, 40, True)]))
    worker.books.put(_book(7, 40))
    ticker = worker.events.next_message()
    assert len(ticker) == 2 and len(worker._books_of(ticker)) == 0
    worker.events.take(len(ticker))
    assert worker._books_of(worker.events.next_message())["update_id"].tolist() == [40]
