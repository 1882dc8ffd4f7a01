"""How long to wait before trying again: the one rule every retry of the bank follows."""

from __future__ import annotations

import random


def backoff_seconds(attempts: int, *, base: float, cap: float, jitter: float = 0.2) -> float:
    """Exponential in the attempts made (`base` after the first, doubling, at most `cap`), spread
    by +/- `jitter` so that the retries of a burst of failures do not come back in step."""
    delay = min(float(cap), float(base) * 2.0 ** max(attempts - 1, 0))
    return delay * random.uniform(1.0 - jitter, 1.0 + jitter)
