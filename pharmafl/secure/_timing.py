"""Stage timings shared by the partner and operator sides (wall and this thread's CPU)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


def now() -> tuple[float, float]:
    """(wall clock, this thread's CPU time): stage timings report both."""
    return time.perf_counter(), time.thread_time()


@dataclass
class StageStats:
    """Seconds per protocol stage (excluding waiting for others)."""

    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    def record(self, stage: str, start: tuple[float, float]) -> None:
        """Add the time since ``start`` (from :func:`now`) to ``stage``."""
        wall, cpu = time.perf_counter() - start[0], time.thread_time() - start[1]
        self.seconds[stage] = self.seconds.get(stage, 0.0) + wall
        self.cpu_seconds[stage] = self.cpu_seconds.get(stage, 0.0) + cpu

    @property
    def total_seconds(self) -> float:
        """Protocol wall seconds over all stages."""
        return sum(self.seconds.values())

    @property
    def total_cpu_seconds(self) -> float:
        """Protocol CPU seconds over all stages."""
        return sum(self.cpu_seconds.values())
