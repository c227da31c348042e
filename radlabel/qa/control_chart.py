"""Early warning on a reader's quality: an EWMA control chart over their scores in time order.

Each point is one read's mean Dice against its reference (gold standard or consensus). What the
chart monitors is, where other readers read the same task, the reader's Dice minus the mean of
theirs: case difficulty cancels out, and a consensus dragged down by one drifting peer (which
lowers everyone's Dice against it) does not make the steady readers alarm. The
reader's own first reads set the centre line and spread (phase I); afterwards the exponentially
weighted moving average must stay above the lower control limit (centre − L·σ·√(λ/(2−λ)·(1−(1−λ)^2t))).
EWMA rather than a Shewhart chart because drift is slow: small sustained drops are what it finds
first. A second, absolute rule alerts when the rolling mean over the protocol's drift window
falls below the certification threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LAMBDA = 0.2
WIDTH = 3.5  # with phase-I estimates from ~10 reads, 3σ alarmed on ~1 in 6 steady readers per 100 reads (bench/qa.py)
SIGMA_FLOOR = 0.02  # Dice: keeps a reader whose first reads were near-identical from alarming on noise


@dataclass
class Chart:
    reader: str
    values: list[float]
    monitored: list[float] = field(default_factory=list)  # what the EWMA runs on (relative to peers where known)
    relative: bool = False
    ewma: list[float] = field(default_factory=list)
    lower_limit: list[float] = field(default_factory=list)
    rolling: list[float] = field(default_factory=list)
    centre: float | None = None
    sigma: float | None = None
    alert_at: int | None = None  # index of the read that raised the alert
    alert: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def baseline_length(window: int) -> int:
    return max(5, min(window, 10))


def pooled_sigma(series: list[list[float]], window: int) -> float | None:
    """The spread of reads around each reader's own phase-I mean, pooled over readers.

    A few reads per reader estimate their spread poorly; the cohort's pooled spread keeps a
    steady reader whose first reads happened to agree from alarming on ordinary case-to-case variation.
    """
    baseline = baseline_length(window)
    residuals = [np.asarray(v[:baseline]) - np.mean(v[:baseline]) for v in series if len(v) >= baseline]
    if not residuals:
        return None
    dof = sum(len(r) - 1 for r in residuals)
    return float(np.sqrt(sum(float((r ** 2).sum()) for r in residuals) / dof))


def control_chart(reader: str, values: list[float], window: int, floor: float | None = None,
                  baseline: int | None = None, cohort_sigma: float | None = None,
                  relative: list[float] | None = None) -> Chart:
    """``floor``: the absolute threshold for the rolling mean (the calibration pass Dice), if any;
    ``cohort_sigma``: the readers' pooled spread (:func:`pooled_sigma`), used when larger than the reader's own;
    ``relative``: per read, Dice minus the peers' mean Dice on the same task (monitored instead of ``values``)."""
    chart = Chart(reader, [float(v) for v in values])
    baseline = baseline or baseline_length(window)
    raw = np.asarray(chart.values, float)
    for i in range(len(raw)):
        chart.rolling.append(round(float(raw[max(0, i - window + 1):i + 1].mean()), 4))
    chart.relative = relative is not None
    x = np.asarray(relative if relative is not None else chart.values, float)
    chart.monitored = [round(float(v), 4) for v in x]
    if len(x) < baseline:
        return chart
    chart.centre = float(x[:baseline].mean())
    chart.sigma = max(float(x[:baseline].std(ddof=1)), cohort_sigma or 0.0, SIGMA_FLOOR)
    z = chart.centre
    for t, value in enumerate(x, 1):
        z = LAMBDA * value + (1 - LAMBDA) * z
        limit = chart.centre - WIDTH * chart.sigma * np.sqrt(LAMBDA / (2 - LAMBDA) * (1 - (1 - LAMBDA) ** (2 * t)))
        chart.ewma.append(round(float(z), 4))
        chart.lower_limit.append(round(float(limit), 4))
        if chart.alert_at is None and t > baseline and z < limit:
            chart.alert_at = t - 1
            what = "Dice relative to peers" if chart.relative else "Dice"
            chart.alert = (f"reader {reader}: quality drifting down — EWMA of {what} {z:.3f} below the lower "
                           f"control limit {limit:.3f} (centre {chart.centre:.3f}) at read {t}")
        if chart.alert_at is None and floor is not None and t >= window and chart.rolling[t - 1] < floor:
            chart.alert_at = t - 1
            chart.alert = (f"reader {reader}: rolling mean Dice {chart.rolling[t - 1]:.3f} over the last {window} "
                           f"reads is below the certification threshold {floor} at read {t}")
    return chart
