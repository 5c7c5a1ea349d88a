"""Training callbacks: how metrics leave the trainer.

A callback is any object with ``on_event(event, trainer, metrics)``.  The trainer emits
``"start"``, ``"step"`` (every iteration), ``"validation"``, ``"checkpoint"``,
``"phase_end"``, ``"paused"``, ``"end"`` and a few bookkeeping events (``"resumed"``,
``"changed"``, ``"reopened"``, ``"init_ae"``, ...).  The three here: a JSON-lines log
(``metrics.jsonl``), a tqdm progress bar, and an in-memory history for notebooks.
"""
from __future__ import annotations

import json
import time
from pathlib import Path


class JSONLinesLogger:
    """Appends every validation / phase-end / end event (and every ``every``-th step) to a file."""

    def __init__(self, path, every: int = 10):
        self.path = Path(path)
        self.every = every

    def on_event(self, event, trainer, metrics):
        """Appends one JSON line (event, phase, step, epoch, unix time and the scalar metrics) to
        ``path`` for every event, except ``"step"`` events whose step is not a multiple of ``every``."""
        if event == "step" and trainer.state["step"] % self.every:
            return
        rec = {"event": event, "phase": trainer.state["phase"], "step": trainer.state["step"],
               "epoch": trainer.state["epoch"], "time": round(time.time(), 3)}
        rec.update({k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None})
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")


class ProgressBar:
    """A tqdm bar per phase, with the latest metrics as postfix."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None

    def on_event(self, event, trainer, metrics):
        """Opens a bar at a phase's first ``"step"`` and advances it by one per step (float metrics as
        postfix), prints ``"validation"`` metrics under it, and closes it on ``"phase_end"``, ``"end"``,
        ``"paused"`` or ``"interrupted"``; does nothing when disabled."""
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        if event in ("phase_end", "end", "paused", "interrupted"):
            if self.bar is not None:
                self.bar.close()
            self.bar = None
            return
        if event == "step" and (self.bar is None or self.bar.desc != trainer.state["phase"]):
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=trainer.phase_total_iters(), desc=trainer.state["phase"],
                            initial=trainer.state["step"] - 1, dynamic_ncols=True, leave=True)
        if self.bar is None:
            return
        if event == "step":
            self.bar.update(1)
            show = {k: f"{v:.4g}" for k, v in metrics.items() if isinstance(v, float)}
            self.bar.set_postfix(show, refresh=False)
        elif event == "validation":
            self.bar.write(f"[{trainer.state['phase']} {trainer.state['step']}] " +
                           ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))


class History:
    """Keeps every event's metrics in memory (handy in notebooks)."""

    def __init__(self):
        self.records = []

    def on_event(self, event, trainer, metrics):
        """Appends ``{"event", "phase", "step", **metrics}`` to :attr:`records` for every event."""
        self.records.append({"event": event, "phase": trainer.state["phase"], "step": trainer.state["step"], **metrics})

    def series(self, key, event="step", phase=None):
        """``[(step, value), ...]`` of one logged quantity (``phase`` None: every phase)."""
        return [(r["step"], r[key]) for r in self.records
                if r["event"] == event and key in r and (phase is None or r["phase"] == phase)]
