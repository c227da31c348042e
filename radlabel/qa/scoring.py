"""One read against a reference read (gold standard or consensus), per class.

The same agreement metrics as adjudication (Dice, surface Dice at the class's tolerance, HD95),
plus voxel sensitivity and specificity against the reference, findings agreement, and the
edge-case rules the reader and the reference disagree on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radlabel.adjudication.decision import DEFAULT_TOLERANCE_MM
from radlabel.adjudication.metrics import mask_agreement
from radlabel.adjudication.reads import Read
from radlabel.protocol.template import Protocol


@dataclass
class ClassScore:
    dice: float
    surface_dice: float
    hd95_mm: float | None
    sensitivity: float
    specificity: float
    both_empty: bool = False

    def as_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass
class ReadScore:
    reader: int
    case: str  # what was read: a task id or a gold case name
    classes: dict[str, ClassScore] = field(default_factory=dict)
    findings_missed: list[str] = field(default_factory=list)
    findings_extra: list[str] = field(default_factory=list)
    edge_cases_missed: list[str] = field(default_factory=list)
    edge_cases_extra: list[str] = field(default_factory=list)

    @property
    def mean_dice(self) -> float | None:
        """Over the classes present in the read or the reference: agreeing on absence says little."""
        present = [c.dice for c in self.classes.values() if not c.both_empty]
        return float(np.mean(present)) if present else None

    def as_dict(self) -> dict:
        return {"reader": self.reader, "case": self.case, "mean_dice": self.mean_dice,
                "classes": {k: v.as_dict() for k, v in self.classes.items()},
                "findings_missed": self.findings_missed, "findings_extra": self.findings_extra,
                "edge_cases_missed": self.edge_cases_missed, "edge_cases_extra": self.edge_cases_extra}


def _rates(read: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    positives, negatives = int(reference.sum()), int(reference.size - reference.sum())
    true_positive = int(np.count_nonzero(read & reference))
    false_positive = int(np.count_nonzero(read & ~reference))
    sensitivity = true_positive / positives if positives else (1.0 if not read.any() else 0.0)
    specificity = (negatives - false_positive) / negatives if negatives else 1.0
    return sensitivity, specificity


def score_read(read: Read, reference: Read, protocol: Protocol, spacing, case: str,
               classes: list[str] | None = None) -> ReadScore:
    """``classes`` limits the scored mask classes (a tier reads only its own)."""
    score = ReadScore(read.reader, case)
    for name, truth in reference.masks.items():
        if classes is not None and name not in classes:
            continue
        mask = read.masks.get(name, np.zeros_like(truth))
        limits = protocol.adjudication.class_thresholds.get(name, protocol.adjudication.thresholds)
        tolerance = protocol.qa.calibration.pass_thresholds.tolerance_mm or limits.tolerance_mm or DEFAULT_TOLERANCE_MM
        agreement = mask_agreement(mask, truth, spacing, tolerance)
        sensitivity, specificity = _rates(mask, truth)
        hd95 = agreement.hd95_mm if np.isfinite(agreement.hd95_mm) else None
        score.classes[name] = ClassScore(round(agreement.dice, 6), round(agreement.surface_dice, 6),
                                         None if hd95 is None else round(hd95, 3),
                                         round(sensitivity, 6), round(specificity, 6),
                                         not mask.any() and not truth.any())
    score.findings_missed = sorted(reference.findings - read.findings)
    score.findings_extra = sorted(read.findings - reference.findings)
    score.edge_cases_missed = sorted(reference.edge_cases - read.edge_cases)
    score.edge_cases_extra = sorted(read.edge_cases - reference.edge_cases)
    return score
