"""One progress line (a bar on a terminal) for a whole dataset: frames done, frames/s, ETA."""
from __future__ import annotations

import sys
import time


class SeriesProgress:
    """Shown once the run has taken over a second; at most one line per 5% on a non-terminal."""

    def __init__(self, total: int, enabled: bool = True, stream=None):
        self.total, self.enabled = max(total, 1), enabled
        self.stream = sys.stdout if stream is None else stream
        self.start, self.done, self.last = time.time(), 0, -1

    def rate(self) -> float:
        elapsed = time.time() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def within_frame(self, fraction: float) -> None:
        self._show(self.done + fraction)

    def frame_done(self, count: int) -> None:
        self.done = count
        self._show(count)

    def _show(self, frames: float) -> None:
        elapsed = time.time() - self.start
        if not self.enabled or elapsed < 1.0:
            return
        pct = int(100 * frames / self.total)
        tty = self.stream.isatty()
        if pct == self.last or (not tty and pct // 5 == self.last // 5 and pct < 100):
            return
        self.last = pct
        rate = frames / elapsed
        eta = (self.total - frames) / rate if rate > 0 else float("inf")
        text = "%d/%d frames, %.2f frames/s, ETA %.0f s" % (int(frames), self.total, rate, eta)
        if tty:
            bar = "#" * (pct // 2)
            self.stream.write(f"\r[{bar:<50}] {pct:3d}% {text}" + ("\n" if pct >= 100 else ""))
        else:
            self.stream.write(f"{pct}% done ({text})\n")
        self.stream.flush()
