"""Which tasks get a hidden gold copy and which final tasks go to QA review.

Gold insertion keeps an exact running rate (one gold copy whenever the produced tasks times the
rate passes the next whole number); QA sampling draws each final task independently with a keyed
hash, so the choice repeats across runs and processes and readers cannot predict it.
"""

from __future__ import annotations

import hashlib
import math


def gold_copies_due(produced: int, inserted: int, rate: float) -> int:
    """How many gold copies to insert now that ``produced`` production tasks exist."""
    return max(0, math.floor(produced * rate + 1e-9) - inserted)


def sampled_for_review(key: bytes, task_id: int, rate: float) -> bool:
    draw = int.from_bytes(hashlib.sha256(key + b"qa-review:" + str(task_id).encode()).digest()[:8], "big") / 2 ** 64
    return draw < rate
