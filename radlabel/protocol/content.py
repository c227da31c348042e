"""The parts of a protocol template, as typed models.

Each model checks its own fields; rules that span several parts (a class read
in a preset that must exist, thresholds naming known classes...) live in
:mod:`radlabel.protocol.template`, which reports them with the field's path.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from radlabel.protocol.codes import check_code
from radlabel.protocol.enum import (
    AdjudicationMethod,
    DeidentificationOption,
    EdgeCaseAction,
    EscalationTrigger,
    Geometry,
    ReaderTier,
)

Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=48,
                            description="lower-case letters, digits and underscores, starting with a letter")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Millimetres = Annotated[float, Field(gt=0.0, le=2000.0)]


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class CodedConcept(Part):
    """A coded concept as DICOM writes it (CodeValue, CodingSchemeDesignator, CodeMeaning)."""

    value: str = Field(min_length=1, max_length=64)
    scheme: str = Field(default="SCT", pattern=r"^[A-Z][A-Z0-9_.\-]*$")
    meaning: str = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _valid_code(self) -> "CodedConcept":
        problem = check_code(self.scheme, self.value, self.meaning)
        if problem:
            raise ValueError(problem)
        return self


class WindowPreset(Part):
    name: Slug
    center: float = Field(ge=-2000, le=70000)
    width: float = Field(gt=0, le=70000)
    modality: Optional[str] = Field(default=None, pattern=r"^[A-Z]{2,4}$")
    description: str = ""


class BoundaryDefinition(Part):
    """Where a class starts and stops: text for readers, rules for machines."""

    text: str = Field(min_length=1)
    min_diameter_mm: Optional[Millimetres] = None
    max_diameter_mm: Optional[Millimetres] = None
    min_volume_mm3: Optional[Annotated[float, Field(gt=0)]] = None
    inside: Optional[str] = None  # name of another class the region must lie in

    @model_validator(mode="after")
    def _diameters_ordered(self) -> "BoundaryDefinition":
        if self.min_diameter_mm and self.max_diameter_mm and self.min_diameter_mm > self.max_diameter_mm:
            raise ValueError(f"min_diameter_mm {self.min_diameter_mm} is larger than max_diameter_mm {self.max_diameter_mm}")
        return self


class LabelClass(Part):
    name: Slug
    display_name: str = Field(min_length=1, max_length=64)
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$", description="#RRGGBB")
    geometry: list[Geometry] = Field(min_length=1)
    read_in: str = Field(description="the window preset this class must be read in")
    category: CodedConcept
    type: CodedConcept
    type_modifier: Optional[CodedConcept] = None
    anatomic_region: Optional[CodedConcept] = None
    tiers: list[ReaderTier] = Field(default_factory=lambda: [ReaderTier.RADIOLOGIST, ReaderTier.SENIOR], min_length=1)
    boundary: Optional[BoundaryDefinition] = None
    landmarks: Optional[int] = Field(default=None, ge=1, le=100, description="expected landmark count per study")

    @field_validator("geometry")
    @classmethod
    def _unique_geometry(cls, value: list[Geometry]) -> list[Geometry]:
        if len(set(value)) != len(value):
            raise ValueError("lists a geometry twice")
        return value

    @property
    def rgb(self) -> tuple[int, int, int]:
        return tuple(int(self.color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


class EdgeCase(Part):
    id: Slug
    text: str = Field(min_length=1)
    action: EdgeCaseAction
    classes: list[str] = Field(default_factory=list, description="classes the rule is about (all when empty)")


class Escalation(Part):
    route_to: ReaderTier = ReaderTier.SENIOR
    triggers: list[EscalationTrigger] = Field(min_length=1)
    low_confidence_below: Optional[Fraction] = None
    instructions: str = ""

    @model_validator(mode="after")
    def _confidence_threshold(self) -> "Escalation":
        if EscalationTrigger.LOW_MODEL_CONFIDENCE in self.triggers and self.low_confidence_below is None:
            raise ValueError("the low_model_confidence trigger needs low_confidence_below (0 to 1)")
        return self


class TierPolicy(Part):
    hourly_cost: Annotated[float, Field(ge=0)] = 0.0
    minutes_per_study: dict[Geometry, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)


class Readers(Part):
    per_study: int = Field(ge=1, le=10)
    tiers: dict[ReaderTier, TierPolicy] = Field(min_length=1)


class Thresholds(Part):
    """Agreement a read must reach (each metric optional)."""

    dice: Optional[Fraction] = None
    surface_dice: Optional[Fraction] = None
    tolerance_mm: Optional[Millimetres] = None
    hd95_mm: Optional[Millimetres] = None
    iou: Optional[Fraction] = None
    distance_mm: Optional[Millimetres] = None
    kappa: Optional[Annotated[float, Field(ge=-1.0, le=1.0)]] = None

    @model_validator(mode="after")
    def _tolerance_with_surface_dice(self) -> "Thresholds":
        if self.surface_dice is not None and self.tolerance_mm is None:
            raise ValueError("surface_dice needs tolerance_mm (the surface tolerance in mm)")
        return self


class Adjudication(Part):
    method: AdjudicationMethod
    arbiter: ReaderTier = ReaderTier.SENIOR
    thresholds: Thresholds
    class_thresholds: dict[str, Thresholds] = Field(default_factory=dict)


class Calibration(Part):
    cases: int = Field(ge=1, le=1000)
    pass_thresholds: Thresholds


class QualityAssurance(Part):
    sampling_rate: Fraction
    gold_insertion_rate: Fraction
    calibration: Calibration
    drift_window: int = Field(default=20, ge=3, le=1000, description="reads in a reader's rolling agreement")


class Deidentification(Part):
    profile: str = Field(default="basic", pattern=r"^basic$")
    options: list[DeidentificationOption] = Field(default_factory=list)
    burned_in_text: str = Field(default="mask", pattern=r"^(mask|hold)$")
    face_risk: str = Field(default="flag", pattern=r"^(flag|hold|deface)$", description="a head CT/MR that may "
                           "show a face: flag it (defaced when the options include clean_recognizable_visual_features), hold "
                           "it for review, or deface it and release it to readers")
    max_linkage_risk: Optional[float] = Field(
        default=None, gt=0, le=1, description="hold output series whose re-identification risk 1/k is above this "
        "(k: output series sharing the kept quasi-identifiers and shape)")

    @field_validator("options")
    @classmethod
    def _compatible_options(cls, value: list[DeidentificationOption]) -> list[DeidentificationOption]:
        both = {DeidentificationOption.RETAIN_LONGITUDINAL_FULL_DATES,
                DeidentificationOption.RETAIN_LONGITUDINAL_MODIFIED_DATES}
        if both <= set(value):
            raise ValueError("retain_longitudinal_full_dates and retain_longitudinal_modified_dates exclude each other")
        return value

    @model_validator(mode="after")
    def _deface_records_its_option(self) -> "Deidentification":
        if self.face_risk == "deface" and \
                DeidentificationOption.CLEAN_RECOGNIZABLE_VISUAL_FEATURES not in self.options:
            raise ValueError("face_risk: deface needs clean_recognizable_visual_features in options "
                             "(the header records the option that removed the face)")
        return self


class Selection(Part):
    """Which studies and series the protocol takes."""

    modalities: list[str] = Field(min_length=1)
    body_parts: list[str] = Field(default_factory=list)
    series_description: Optional[str] = Field(default=None, description="regular expression, case-insensitive")
    study_date_from: Optional[date] = None
    study_date_to: Optional[date] = None
    min_slices: int = Field(default=1, ge=1, le=5000)
    max_slice_thickness_mm: Optional[Millimetres] = None

    @field_validator("modalities", "body_parts")
    @classmethod
    def _upper_codes(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"[A-Z][A-Z0-9_ ]{0,15}", item):
                raise ValueError(f"{item!r} is not a DICOM code string (upper case, at most 16 characters)")
        return value

    @field_validator("series_description")
    @classmethod
    def _regex(cls, value: Optional[str]) -> Optional[str]:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a valid regular expression ({exc})") from None
        return value

    @model_validator(mode="after")
    def _date_range(self) -> "Selection":
        if self.study_date_from and self.study_date_to and self.study_date_from > self.study_date_to:
            raise ValueError("study_date_from is after study_date_to")
        return self
