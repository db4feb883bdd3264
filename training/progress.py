"""Progress of long work on stderr: a bar with rate and ETA on a terminal; elsewhere (a log file, a pipe) one
summary line when the work is done, so logs stay short.

    progress = Progress("W jets", total=30000, unit="jets")
    progress.update(500)          # after each piece of work
    progress.close()

``quiet=True`` (the commands' ``--quiet``) prints nothing.
"""
from __future__ import annotations

import sys
import time

BAR_WIDTH = 28


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """Counts done units of ``total``; the rate counts only this run's units (a resumed run starts at ``done``)."""

    def __init__(self, label: str, total: int, unit: str = "items", done: int = 0, quiet: bool = False,
                 stream=None):
        self.label, self.total, self.unit, self.quiet = label, max(1, int(total)), unit, quiet
        self.done = self._start = int(done)
        self.stream = stream or sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = time.monotonic()
        self._finished = False

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self._t0
        return (self.done - self._start) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        eta = _clock((self.total - self.done) / rate) if rate > 0 else "--:--"
        fraction = min(1.0, self.done / self.total)
        bar = ("#" * int(fraction * BAR_WIDTH)).ljust(BAR_WIDTH, ".") if self.terminal else ""
        return (f"{self.label} {bar + ' ' if bar else ''}{self.done}/{self.total} {self.unit} "
                f"({100 * fraction:.0f}%), {rate:.1f} {self.unit}/s, ETA {eta}")

    def update(self, n: int = 1):
        self.done += int(n)
        if self.quiet:
            return
        if self.terminal:
            self.stream.write("\r" + self.line())
            self.stream.flush()
        elif self.done >= self.total and not self._finished:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
        self._finished = self.done >= self.total

    def close(self):
        if self.terminal and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
