"""Time, fatigue and cost: what labelling costs and when readers tire.

Inputs are score records in time order — one per scored read: reader, epoch seconds when the read
was saved, Label Studio's lead time (seconds spent on the task) and the read's mean Dice.
Cost per geometry comes from the protocol's reader rates (minutes per study and hourly cost per
tier), with arbitration charged at the measured arbitration rate.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from radlabel.protocol.enum import ReaderTier
from radlabel.protocol.template import Protocol

SESSION_GAP_S = 30 * 60  # a pause this long starts a new reading session
SESSION_BINS = ((0, 30), (30, 60), (60, 120), (120, 10_000))  # minutes into the session
DAY_BINS = ((0, 6, "night"), (6, 12, "morning"), (12, 18, "afternoon"), (18, 24, "evening"))
MIN_READS_PER_BIN = 5
FATIGUE_DROP = 0.05  # mean Dice lost between the first and a later bin that counts as a signal


def time_per_task(records: list[dict]) -> dict:
    by_reader = defaultdict(list)
    for r in records:
        if r.get("lead_time_s"):
            by_reader[r["reader"]].append(float(r["lead_time_s"]))
    return {reader: {"reads": len(v), "median_s": round(float(np.median(v)), 1), "mean_s": round(float(np.mean(v)), 1)}
            for reader, v in sorted(by_reader.items())}


def _bin_means(pairs: list[tuple[str, float]], order: list[str]) -> dict:
    grouped = defaultdict(list)
    for key, value in pairs:
        grouped[key].append(value)
    return {key: {"reads": len(grouped[key]), "mean_dice": round(float(np.mean(grouped[key])), 4)}
            for key in order if grouped.get(key)}


def fatigue(records: list[dict]) -> dict:
    """Per reader: quality by minutes into the reading session and by time of day, with a signal."""
    out = {}
    by_reader = defaultdict(list)
    for r in sorted(records, key=lambda r: r["at"]):
        if r.get("mean_dice") is not None:
            by_reader[r["reader"]].append(r)
    session_names = [f"{a}-{b} min" if b < 10_000 else f"{a}+ min" for a, b in SESSION_BINS]
    for reader, rows in sorted(by_reader.items()):
        start = previous = None
        in_session, of_day = [], []
        for r in rows:
            if previous is None or r["at"] - previous > SESSION_GAP_S:
                start = r["at"]
            previous = r["at"]
            minutes = (r["at"] - start) / 60
            name = next(n for (a, b), n in zip(SESSION_BINS, session_names) if a <= minutes < b)
            in_session.append((name, r["mean_dice"]))
            hour = time.localtime(r["at"]).tm_hour
            of_day.append((next(n for a, b, n in DAY_BINS if a <= hour < b), r["mean_dice"]))
        session = _bin_means(in_session, session_names)
        counted = [(k, v) for k, v in session.items() if v["reads"] >= MIN_READS_PER_BIN]
        signal = None
        if len(counted) >= 2:
            first, worst = counted[0], min(counted[1:], key=lambda kv: kv[1]["mean_dice"])
            if first[1]["mean_dice"] - worst[1]["mean_dice"] >= FATIGUE_DROP:
                signal = (f"reader {reader}: mean Dice {worst[1]['mean_dice']:.2f} at {worst[0]} into a session "
                          f"against {first[1]['mean_dice']:.2f} at its start")
        out[reader] = {"by_session_time": session, "by_time_of_day": _bin_means(of_day, [n for *_, n in DAY_BINS]),
                       "signal": signal}
    return out


def geometry_cost(protocol: Protocol, arbitration_rate: float = 0.0) -> list[dict]:
    """Cost per study of each geometry and tier from the protocol's rates (the read-time trade-off)."""
    rows = []
    senior = protocol.readers.tiers.get(ReaderTier.SENIOR)
    for tier, policy in protocol.readers.tiers.items():
        for geometry, minutes in policy.minutes_per_study.items():
            per_read = minutes / 60 * policy.hourly_cost
            arbitration = 0.0
            if senior and geometry in senior.minutes_per_study:
                arbitration = arbitration_rate * senior.minutes_per_study[geometry] / 60 * senior.hourly_cost
            rows.append({"geometry": geometry.value, "tier": tier.value, "minutes_per_read": minutes,
                         "reads_per_study": protocol.readers.per_study, "cost_per_read": round(per_read, 2),
                         "reader_minutes_per_study": minutes * protocol.readers.per_study,
                         "cost_per_study": round(per_read * protocol.readers.per_study + arbitration, 2)})
    return sorted(rows, key=lambda r: (r["geometry"], r["cost_per_study"]))


def measured_cost(records: list[dict], tiers: dict, protocol: Protocol) -> dict:
    """Reader time actually spent (lead times) priced at each reader's tier rate."""
    seconds = defaultdict(float)
    for r in records:
        seconds[r["reader"]] += float(r.get("lead_time_s") or 0)
    out = {}
    for reader, spent in sorted(seconds.items()):
        tier = tiers.get(reader)
        policy = protocol.readers.tiers.get(ReaderTier(tier)) if tier else None
        out[reader] = {"hours": round(spent / 3600, 3), "tier": tier,
                       "cost": round(spent / 3600 * policy.hourly_cost, 2) if policy else None}
    return out
