"""Abuse limits for ``/api``: a per-subject request rate limit and a back-off on failed logins.

Both use the ``limits`` library's moving-window counters in process memory (one web server per
platform; a restart forgets them, which only ever lets a client back in sooner). A refusal is a
429 whose ``Retry-After`` says when the window frees a slot.

* requests: ``[web] rate_limit`` per token subject (anonymous requests: per client address);
* logins: after ``[web] login_failures`` failed client-credential attempts for one client id (or
  from one address) within ``[web] login_window``, POST /api/token answers 429 until the window
  has moved on; each refused attempt is audited by the app.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class Limiter:
    """``hit(key)`` -> 0.0 if allowed, else the seconds until a retry can succeed."""

    def __init__(self, amount: int, per_s: int, namespace: str):
        self.item = RateLimitItemPerSecond(max(1, int(amount)), max(1, int(per_s)), namespace=namespace)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> float:
        if self._limiter.hit(self.item, key):
            return 0.0
        return self.retry_after(key)

    def test(self, key: str) -> float:
        """Like ``hit`` but takes no slot (a login is counted only when it fails)."""
        if self._limiter.test(self.item, key):
            return 0.0
        return self.retry_after(key)

    def retry_after(self, key: str) -> float:
        reset_at, _ = self._limiter.get_window_stats(self.item, key)
        return max(1.0, math.ceil(reset_at - time.time()))

    def clear(self, key: str) -> None:
        self._limiter.clear(self.item, key)
