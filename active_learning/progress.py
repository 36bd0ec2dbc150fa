"""Progress reports with an ETA, for every long step (the CLI's bar and the App's operator progress alike)."""

from __future__ import annotations

import time
from typing import Callable

ProgressCallback = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)


def format_duration(seconds: float) -> str:
    """``45 s``, ``3 min``, ``1 h 20 min``: how long, at the precision a person wants from an ETA."""
    seconds = max(float(seconds), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def eta_seconds(fraction: float, elapsed: float) -> float | None:
    """The time left if the rest goes at the pace so far; None before there is a pace (under 2% done)."""
    if fraction < 0.02 or fraction >= 1.0 or elapsed <= 0:
        return None if fraction < 1.0 else 0.0
    return elapsed * (1.0 - fraction) / fraction


def with_eta(report: ProgressCallback, clock: Callable[[], float] = time.monotonic) -> ProgressCallback:
    """A progress callback that appends ``about N left`` to each message, from the pace since it was made."""
    started = clock()

    def progress(fraction: float, message: str) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        left = eta_seconds(fraction, clock() - started)
        suffix = f" (about {format_duration(left)} left)" if left else ""
        report(fraction, f"{message}{suffix}")

    return progress
