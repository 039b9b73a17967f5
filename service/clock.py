"""The service's clock: wall-clock time as the records, the scores and the scripts keep it."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch (UTC)."""
    return int(time.time() * 1000)
