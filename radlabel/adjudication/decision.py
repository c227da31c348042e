"""From the reads of one series to a decision: consensus accepted, or arbitration.

Per mask class: agreement of every reader pair against the protocol's thresholds (the class's
own, else the defaults); consensus by the protocol's method; each reader against the consensus.
Findings (classification) by majority, a tie goes to arbitration. An escalation, or an edge case
whose action is ``escalate``, goes to arbitration whatever the agreement.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from radlabel.adjudication.consensus import majority, staple
from radlabel.adjudication.metrics import continuity_issues, pairwise
from radlabel.adjudication.reads import Read, diameters_mm
from radlabel.protocol.content import Thresholds
from radlabel.protocol.enum import AdjudicationMethod, EdgeCaseAction
from radlabel.protocol.template import Protocol

DEFAULT_TOLERANCE_MM = 1.5


@dataclass
class Decision:
    accepted: bool
    reasons: list[str]
    consensus: dict[str, np.ndarray]
    findings: set[str]
    agreement: dict = field(default_factory=dict)  # class -> {"pairs": [...], "vs_consensus": {...}}
    reader_quality: dict = field(default_factory=dict)  # class -> reader -> sensitivity/specificity
    reader_findings: dict = field(default_factory=dict)  # reader -> findings ticked
    edge_cases: dict = field(default_factory=dict)  # reader -> edge-case rules flagged
    measurements: dict = field(default_factory=dict)  # reader -> class -> [{"slice", "mm"}] from their rulers

    def summary(self) -> dict:
        return {"accepted": self.accepted, "reasons": self.reasons, "findings": sorted(self.findings),
                "agreement": self.agreement, "reader_quality": self.reader_quality,
                "reader_findings": self.reader_findings, "edge_cases": self.edge_cases,
                "measurements": self.measurements}


def _failures(pair: dict, limits: Thresholds) -> list[str]:
    failed = []
    if limits.dice is not None and pair["dice"] < limits.dice:
        failed.append(f"Dice {pair['dice']:.2f} < {limits.dice}")
    if limits.surface_dice is not None and pair["surface_dice"] < limits.surface_dice:
        failed.append(f"surface Dice {pair['surface_dice']:.2f} < {limits.surface_dice}")
    if limits.hd95_mm is not None and (pair["hd95_mm"] is None or pair["hd95_mm"] > limits.hd95_mm):
        failed.append(f"HD95 {pair['hd95_mm']} mm > {limits.hd95_mm}")
    return failed


def size_issues(measurements: dict, protocol: Protocol) -> list[str]:
    """Diameters outside the protocol's size rules (boundary min/max_diameter_mm), one sentence each."""
    issues = []
    for reader, classes in measurements.items():
        for name, diameters in classes.items():
            cls = protocol.label_class(name)
            rule = cls.boundary if cls else None
            for d in diameters:
                where = f"{name}: reader {reader} measured {d['mm']} mm on slice {d['slice'] + 1}"
                if rule and rule.min_diameter_mm is not None and d["mm"] < rule.min_diameter_mm:
                    issues.append(f"{where}, below the protocol's {rule.min_diameter_mm} mm minimum")
                if rule and rule.max_diameter_mm is not None and d["mm"] > rule.max_diameter_mm:
                    issues.append(f"{where}, above the protocol's {rule.max_diameter_mm} mm maximum")
    return issues


def decide(reads: list[Read], protocol: Protocol, spacing: tuple[float, float, float]) -> Decision:
    method = protocol.adjudication.method
    reasons: list[str] = []
    consensus: dict[str, np.ndarray] = {}
    agreement: dict = {}
    quality: dict = {}
    for name in reads[0].masks:
        limits = protocol.adjudication.class_thresholds.get(name, protocol.adjudication.thresholds)
        tolerance = limits.tolerance_mm or DEFAULT_TOLERANCE_MM
        masks = [read.masks[name] for read in reads]
        pairs = pairwise(masks, spacing, tolerance)
        rows = []
        for (i, j), metrics in pairs.items():
            row = {"a": reads[i].reader, "b": reads[j].reader} | metrics.as_dict()
            rows.append(row)
            for failure in _failures(row, limits):
                reasons.append(f"{name}: readers {reads[i].reader} and {reads[j].reader}: {failure}")
        if method is AdjudicationMethod.STAPLE:
            result = staple(masks)
            consensus[name] = result.consensus
            quality[name] = {str(r.reader): {"sensitivity": round(p, 6), "specificity": round(q, 6)}
                             for r, p, q in zip(reads, result.sensitivity, result.specificity)}
        else:  # majority; ties on an even panel show in the agreement figures
            consensus[name] = majority(masks)[0]
        versus = pairwise([consensus[name]] + masks, spacing, tolerance)
        agreement[name] = {"pairs": rows, "tolerance_mm": tolerance,
                           "vs_consensus": {str(read.reader): versus[(0, k + 1)].as_dict()
                                            for k, read in enumerate(reads)},
                           # breaks and drifts across contiguous slices, per reader (reported, not a failure)
                           "continuity": {str(read.reader): issues for read, mask in zip(reads, masks)
                                          if (issues := continuity_issues(mask, spacing))}}
    votes = Counter(f for read in reads for f in read.findings)
    findings = {f for f, n in votes.items() if n * 2 > len(reads)}
    tied = sorted(f for f, n in votes.items() if n * 2 == len(reads))
    if tied:
        reasons.append(f"findings split evenly: {', '.join(tied)}")
    escalating = {case.id for case in protocol.edge_cases if case.action is EdgeCaseAction.ESCALATE}
    for read in reads:
        if read.escalated:
            reasons.append(f"reader {read.reader} escalated")
        for case in sorted(read.edge_cases & escalating):
            reasons.append(f"reader {read.reader} met edge case {case} (escalate)")
    if method in (AdjudicationMethod.CONSENSUS_REVIEW,):
        reasons.append("the protocol reviews every series in consensus")
    measurements = {str(read.reader): diameters_mm(read, spacing[1:]) for read in reads if read.rulers}
    reasons += size_issues(measurements, protocol)
    decision = Decision(not reasons, reasons, consensus, findings, agreement, quality, measurements=measurements)
    decision.reader_findings = {str(read.reader): sorted(read.findings) for read in reads}
    decision.edge_cases = {str(read.reader): sorted(read.edge_cases) for read in reads}
    return decision
