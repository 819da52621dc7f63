"""Live progress of a job: `report()` inside the job, and its one-line rendering in the notebook."""

from __future__ import annotations

import os
import time
from typing import Any

from hubflow.launcher.channel import channel_from_env

_first: tuple[float, float] | None = None


def report(
    step: int | float | None = None, total: int | float | None = None, **metrics: Any
) -> None:
    """Report progress from inside a job: `report(step=10, total=100, loss=0.3)`.

    Only rank 0's reports are kept (every rank may call it); outside a job it does nothing.
    The notebook shows the step, the metrics, the rate and, with `total`, the time left.
    """
    global _first
    channel = channel_from_env()
    if channel is None or os.environ.get("RANK", "0") != "0":
        return
    now = time.time()
    progress: dict[str, Any] = {"time": now, "step": step, "total": total, "metrics": metrics}
    if step is not None:
        if _first is None:
            _first = (now, float(step))
        elapsed, done = now - _first[0], float(step) - _first[1]
        if elapsed > 0 and done > 0:
            progress["rate"] = done / elapsed
            if total is not None:
                progress["eta"] = max(0.0, (float(total) - float(step)) / progress["rate"])
    channel.write_progress(progress)


def restart_rate() -> None:
    """Measure the rate and time left from the next report() on (a warm rank's next cell)."""
    global _first
    _first = None


def format_duration(seconds: float) -> str:
    """1h02m03s / 2m03s / 3.0s."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_progress(progress: dict[str, Any] | None) -> str:
    """'step 10/100 · loss=0.3 · 4.2 steps/s · ETA 21.4s' ('' when nothing was reported)."""
    if not progress:
        return ""
    parts = []
    step, total = progress.get("step"), progress.get("total")
    if step is not None:
        parts.append(f"step {_format_value(step)}" + (f"/{_format_value(total)}" if total else ""))
    parts += [f"{k}={_format_value(v)}" for k, v in (progress.get("metrics") or {}).items()]
    if progress.get("rate"):
        parts.append(f"{progress['rate']:.3g} steps/s")
    if progress.get("eta") is not None:
        parts.append(f"ETA {format_duration(progress['eta'])}")
    return " · ".join(parts)
