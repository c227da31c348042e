"""The protocol template: the single source of truth that governs a dataset."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterator, Optional

from pydantic import Field

from radlabel.protocol.content import (
    Adjudication,
    Deidentification,
    EdgeCase,
    Escalation,
    LabelClass,
    Part,
    QualityAssurance,
    Readers,
    Selection,
    Slug,
    WindowPreset,
)
from radlabel.protocol.enum import AdjudicationMethod, Geometry

# Two class colours closer than this (Euclidean distance in RGB) are hard to tell apart.
MIN_COLOUR_DISTANCE = 60.0


@dataclass(frozen=True)
class Issue:
    """A rule broken at a place in the template (a path of keys and indices)."""

    path: tuple
    message: str


class Protocol(Part):
    id: Slug
    name: str = Field(min_length=1, max_length=100)
    version: str = Field(pattern=r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$", description="semantic version MAJOR.MINOR.PATCH")
    description: str = ""
    selection: Selection
    window_presets: list[WindowPreset] = Field(min_length=1)
    default_preset: str
    classes: list[LabelClass] = Field(min_length=1)
    edge_cases: list[EdgeCase] = Field(default_factory=list)
    escalation: Escalation
    readers: Readers
    adjudication: Adjudication
    qa: QualityAssurance
    deidentification: Deidentification = Deidentification()
    ml: dict = Field(default_factory=dict, description="pre-labelling settings, read by the ML backend")

    # -- derived ----------------------------------------------------------
    @property
    def version_tuple(self) -> tuple[int, int, int]:
        return tuple(int(part) for part in self.version.split("."))  # type: ignore[return-value]

    @property
    def fingerprint(self) -> str:
        """A digest of the content: two templates with equal fingerprints govern identically."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def preset(self, name: str) -> Optional[WindowPreset]:
        return next((p for p in self.window_presets if p.name == name), None)

    def label_class(self, name: str) -> Optional[LabelClass]:
        return next((c for c in self.classes if c.name == name), None)

    def classes_with(self, geometry: Geometry) -> list[LabelClass]:
        return [c for c in self.classes if geometry in c.geometry]

    # -- rules across parts -----------------------------------------------
    def issues(self) -> list[Issue]:
        return list(self._issues())

    def _issues(self) -> Iterator[Issue]:
        preset_names = [p.name for p in self.window_presets]
        yield from _duplicates(preset_names, "window_presets", "name", "window preset")
        if self.default_preset not in preset_names:
            yield Issue(("default_preset",), f"names no window preset; expected one of {preset_names}")
        for index, preset in enumerate(self.window_presets):
            if preset.modality and preset.modality not in self.selection.modalities:
                yield Issue(("window_presets", index, "modality"),
                            f"{preset.modality} is not among selection.modalities {self.selection.modalities}")
        names = [c.name for c in self.classes]
        yield from _duplicates(names, "classes", "name", "class")
        yield from _duplicates([c.display_name.lower() for c in self.classes], "classes", "display_name", "display name")
        for index, cls in enumerate(self.classes):
            where = ("classes", index)
            if cls.read_in not in preset_names:
                yield Issue((*where, "read_in"), f"{cls.read_in!r} is not a window preset; expected one of {preset_names}")
            for tier in cls.tiers:
                if tier not in self.readers.tiers:
                    yield Issue((*where, "tiers"), f"tier {tier.value!r} is not defined under readers.tiers")
            if cls.boundary and cls.boundary.inside is not None:
                if cls.boundary.inside == cls.name:
                    yield Issue((*where, "boundary", "inside"), "a class cannot be required to lie inside itself")
                elif cls.boundary.inside not in names:
                    yield Issue((*where, "boundary", "inside"), f"{cls.boundary.inside!r} is not a class of this protocol")
            if Geometry.LANDMARK in cls.geometry and len(cls.geometry) > 1:
                yield Issue((*where, "geometry"), "a landmark class takes no other geometry")
            for other_index, other in enumerate(self.classes[:index]):
                distance = sum((a - b) ** 2 for a, b in zip(cls.rgb, other.rgb)) ** 0.5
                if distance < MIN_COLOUR_DISTANCE:
                    yield Issue((*where, "color"), f"{cls.color} clashes with {other.name}'s {other.color} "
                                                   f"(colour distance {distance:.0f} < {MIN_COLOUR_DISTANCE:.0f})")
        yield from _duplicates([e.id for e in self.edge_cases], "edge_cases", "id", "edge case")
        for index, case in enumerate(self.edge_cases):
            for name in case.classes:
                if name not in names:
                    yield Issue(("edge_cases", index, "classes"), f"{name!r} is not a class of this protocol")
        for name in self.adjudication.class_thresholds:
            if name not in names:
                yield Issue(("adjudication", "class_thresholds", name), f"{name!r} is not a class of this protocol")
        if self.adjudication.method in (AdjudicationMethod.MAJORITY, AdjudicationMethod.STAPLE) and self.readers.per_study < 2:
            yield Issue(("readers", "per_study"),
                        f"{self.adjudication.method.value} needs at least 2 readers per study, not {self.readers.per_study}")
        for field, tier in (("arbiter", self.adjudication.arbiter), ("route_to", self.escalation.route_to)):
            if tier not in self.readers.tiers:
                part = "adjudication" if field == "arbiter" else "escalation"
                yield Issue((part, field), f"tier {tier.value!r} is not defined under readers.tiers")


def _duplicates(values: list[str], collection: str, field: str, what: str) -> Iterator[Issue]:
    seen: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in seen:
            yield Issue((collection, index, field), f"duplicate {what} {value!r} (also at {collection}[{seen[value]}])")
        else:
            seen[value] = index
