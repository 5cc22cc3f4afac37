"""Open orders mirrored to Redis, behind the database write (optional).

One hash per platform namespace, ``hftshm:<namespace>:oms:open_orders``: field = order id, value =
a small JSON object of the order as of its latest persisted event; an order leaves the hash when it
reaches a terminal state. Dashboards and other tools read it without touching the database. The
writer thread calls ``apply`` after each committed batch, one pipelined round trip per batch.
"""

from __future__ import annotations

import json
import math

import numpy as np

from hftshm.codes import OrderState, Side
from hftshm.oms import states

_TERMINAL = np.array(sorted(int(s) for s in states.TERMINAL_STATES), dtype=np.int64)


class OpenOrderCache:
    def __init__(self, url: str, key: str, socket_timeout_s: float = 0.5):
        import redis

        self.key = key
        self.client = redis.Redis.from_url(url, socket_timeout=socket_timeout_s,
                                           socket_connect_timeout=socket_timeout_s)

    def apply(self, events: np.ndarray) -> None:
        """Mirror the latest event of every order in ``events`` (a committed batch)."""
        if len(events) == 0:
            return
        # the last occurrence of each order id in the batch is its latest event
        reversed_ids = events["order_id"][::-1]
        _, first_in_reversed = np.unique(reversed_ids, return_index=True)
        latest = events[len(events) - 1 - first_in_reversed]
        terminal = np.isin(latest["state"], _TERMINAL)
        pipe = self.client.pipeline(transaction=False)
        gone = latest["order_id"][terminal]
        if len(gone):
            pipe.hdel(self.key, *[str(int(i)) for i in gone])
        live = latest[~terminal]
        if len(live):
            pipe.hset(self.key, mapping={str(int(e["order_id"])): _encode(e) for e in live})
        pipe.execute()

    def open_orders(self) -> dict[int, dict]:
        return {int(k): json.loads(v) for k, v in self.client.hgetall(self.key).items()}

    def clear(self) -> None:
        self.client.delete(self.key)

    def close(self) -> None:
        self.client.close()


def _encode(event: np.void) -> str:
    price = float(event["price"])
    return json.dumps({
        "client_order_id": int(event["client_order_id"]),
        "strategy_id": int(event["strategy_id"]),
        "symbol_id": int(event["symbol_id"]),
        "side": Side(int(event["side"])).name.lower(),
        "price": None if math.isnan(price) else price,
        "qty": float(event["qty"]),
        "cum_qty": float(event["cum_qty"]),
        "leaves_qty": float(event["leaves_qty"]),
        "state": OrderState(int(event["state"])).name.lower(),
        "updated_ts_ns": int(event["local_ts_ns"]),
    }, separators=(",", ":"))
