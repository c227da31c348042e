"""Certification of a reader for production, per tier, from the scores of their calibration reads.

A tier is certified when, for every mask class that tier reads (the class's ``tiers``), the mean
over the calibration cases meets the protocol's ``qa.calibration.pass_thresholds`` (Dice, surface
Dice, HD95), and findings agree beyond the kappa threshold where one is set. Otherwise the
feedback names each case and class that fell short, the metric and the edge-case rules that
govern that class — what the reader should re-read before trying again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radlabel.adjudication.metrics import cohen_kappa
from radlabel.protocol.enum import Geometry, ReaderTier
from radlabel.protocol.template import Protocol
from radlabel.qa.scoring import ReadScore


@dataclass
class Shortfall:
    case: str
    class_name: str
    metric: str
    value: float | None
    threshold: float
    rules: list[str] = field(default_factory=list)  # edge-case rules about the class

    def text(self) -> str:
        shown = "none" if self.value is None else f"{self.value:.2f}"
        compare = ">" if self.metric == "hd95_mm" else "<"
        rules = f"; review rules {', '.join(self.rules)}" if self.rules else ""
        return f"case {self.case}, {self.class_name}: {self.metric} {shown} {compare} {self.threshold}{rules}"


@dataclass
class Certification:
    reader: int
    tier: ReaderTier
    certified: bool
    cases: int
    class_means: dict[str, dict[str, float | None]]
    shortfalls: list[Shortfall]
    failed_classes: list[str]
    findings_kappa: float | None = None
    notes: list[str] = field(default_factory=list)

    def feedback(self) -> str:
        if self.certified:
            means = ", ".join(f"{name} {figures['dice']:.2f}" for name, figures in self.class_means.items())
            return (f"reader {self.reader} is certified as {self.tier.value} on {self.cases} calibration cases "
                    f"(mean Dice {means or 'n/a'}).")
        lines = [f"reader {self.reader} is not certified as {self.tier.value}: "
                 f"{', '.join(self.failed_classes) or 'findings'} below the protocol's pass thresholds."]
        lines += [f"- {s.text()}" for s in self.shortfalls]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"reader": self.reader, "tier": self.tier.value, "certified": self.certified, "cases": self.cases,
                "class_means": self.class_means, "failed_classes": self.failed_classes,
                "findings_kappa": self.findings_kappa,
                "shortfalls": [s.__dict__ for s in self.shortfalls], "notes": self.notes}


def tier_classes(protocol: Protocol, tier: ReaderTier) -> list[str]:
    return [c.name for c in protocol.classes_with(Geometry.MASK) if tier in c.tiers]


def _rules_for(protocol: Protocol, class_name: str) -> list[str]:
    return [case.id for case in protocol.edge_cases if not case.classes or class_name in case.classes]


def certify(scores: list[ReadScore], protocol: Protocol, tier: ReaderTier, reader: int,
            reference_findings: dict[str, set[str]] | None = None) -> Certification:
    """``reference_findings``: case -> findings of the reference, for the kappa over findings."""
    limits = protocol.qa.calibration.pass_thresholds
    classes = tier_classes(protocol, tier)
    means: dict[str, dict] = {}
    shortfalls: list[Shortfall] = []
    failed: list[str] = []
    checks = [("dice", limits.dice, False), ("surface_dice", limits.surface_dice, False),
              ("hd95_mm", limits.hd95_mm, True)]
    for name in classes:
        rows = [s.classes[name] for s in scores if name in s.classes]
        if not rows:
            continue
        hd = [r.hd95_mm for r in rows]
        means[name] = {"dice": round(float(np.mean([r.dice for r in rows])), 4),
                       "surface_dice": round(float(np.mean([r.surface_dice for r in rows])), 4),
                       "hd95_mm": None if any(h is None for h in hd) else round(float(np.mean(hd)), 3),
                       "sensitivity": round(float(np.mean([r.sensitivity for r in rows])), 4),
                       "specificity": round(float(np.mean([r.specificity for r in rows])), 6)}
        for metric, threshold, upper in checks:
            if threshold is None:
                continue
            mean = means[name][metric]
            if mean is None or (mean > threshold if upper else mean < threshold):
                failed.append(name) if name not in failed else None
            for score in scores:
                value = getattr(score.classes[name], metric) if name in score.classes else None
                if value is None or (value > threshold if upper else value < threshold):
                    shortfalls.append(Shortfall(score.case, name, metric, value, threshold, _rules_for(protocol, name)))
    notes = []
    for score in scores:
        if score.findings_missed or score.findings_extra:
            notes.append(f"case {score.case}: findings missed {score.findings_missed or '-'}, "
                         f"extra {score.findings_extra or '-'}")
        if score.edge_cases_missed:
            notes.append(f"case {score.case}: edge-case rules the reference applied and you did not: "
                         f"{', '.join(score.edge_cases_missed)}")
    kappa = None
    if reference_findings:
        every = sorted({f for found in reference_findings.values() for f in found}
                       | {f for s in scores for f in s.findings_extra})
        truth, given = [], []
        for score in scores:
            reference = reference_findings.get(score.case, set())
            chosen = (reference - set(score.findings_missed)) | set(score.findings_extra)
            truth += [f in reference for f in every]
            given += [f in chosen for f in every]
        if truth:
            kappa = round(cohen_kappa(truth, given), 4)
    findings_failed = limits.kappa is not None and kappa is not None and kappa < limits.kappa
    if findings_failed:
        notes.append(f"findings kappa {kappa:.2f} < {limits.kappa}")
    if len(scores) < protocol.qa.calibration.cases:
        notes.append(f"{len(scores)} of {protocol.qa.calibration.cases} calibration cases read")
    certified = (not failed and not findings_failed and bool(means or not classes)
                 and len(scores) >= protocol.qa.calibration.cases)
    return Certification(reader, tier, certified, len(scores), means, shortfalls, failed, kappa, notes)
