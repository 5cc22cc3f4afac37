"""replay_nb.publish: the one writer of staged market records into a ring."""

from __future__ import annotations

from hftshm.feed import replay_nb
from hftshm.transport.layout import load as load_layout
from hftshm.transport.ring import Ring


def test_publish_sees_the_room_the_consumer_made_not_the_producers_stale_count():
    """The producer caches the consumer's cursor; a batch bigger than the cached room must look again
    (the ring emptied meanwhile): the whole batch goes in one call, not one record and the rest a
    step later (as it did at every wrap of the live feed's rings)."""
    ring = Ring.private("market_event", 8)
    staged = load_layout("market_event").zeros(6)
    assert replay_nb.publish(ring.ctrl, ring.records, staged, 0, 6, 1, False) == 6  # cached room: 2 left
    assert len(ring.poll(8)) == 6
    ring.release()  # the consumer took everything
    assert replay_nb.publish(ring.ctrl, ring.records, staged, 0, 6, 2, False) == 6
    assert len(ring.poll(8)) == 2 and ring.occupancy() == 6  # (a poll is contiguous: the wrap splits it)
    ring.release()
    assert len(ring.poll(8)) == 4
    ring.release()
    # a ring that really is full still takes only what fits (block back-pressure: the rest waits)
    assert replay_nb.publish(ring.ctrl, ring.records, staged, 0, 6, 3, False) == 6
    assert replay_nb.publish(ring.ctrl, ring.records, staged, 0, 6, 4, False) == 2
