"""Enumerated values of protocol templates."""

from __future__ import annotations

from enum import Enum


class Geometry(str, Enum):
    """How a class is annotated."""

    MASK = "mask"  # volumetric mask, painted slice by slice (brush)
    BOX = "box"
    POLYGON = "polygon"
    LANDMARK = "landmark"  # keypoint
    CLASSIFICATION = "classification"  # study/series-level choice
    MEASUREMENT = "measurement"  # linear measurement in mm


class EdgeCaseAction(str, Enum):
    LABEL = "label"
    DO_NOT_LABEL = "do_not_label"
    FLAG = "flag"
    ESCALATE = "escalate"


class EscalationTrigger(str, Enum):
    READER_FLAG = "reader_flag"
    LOW_MODEL_CONFIDENCE = "low_model_confidence"
    DISAGREEMENT = "disagreement"


class ReaderTier(str, Enum):
    TECHNICIAN = "technician"
    RADIOLOGIST = "radiologist"
    SENIOR = "senior"


class AdjudicationMethod(str, Enum):
    MAJORITY = "majority"
    STAPLE = "staple"
    SENIOR_ARBITRATION = "senior_arbitration"
    CONSENSUS_REVIEW = "consensus_review"


class DeidentificationOption(str, Enum):
    """PS3.15 Annex E options, with their DCM codes (CID 7050)."""

    CLEAN_PIXEL_DATA = "clean_pixel_data"
    CLEAN_RECOGNIZABLE_VISUAL_FEATURES = "clean_recognizable_visual_features"
    CLEAN_GRAPHICS = "clean_graphics"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    RETAIN_LONGITUDINAL_FULL_DATES = "retain_longitudinal_full_dates"
    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain_longitudinal_modified_dates"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_UIDS = "retain_uids"
    RETAIN_SAFE_PRIVATE = "retain_safe_private"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"

    @property
    def code(self) -> str:
        return _DEID_CODES[self]


_DEID_CODES = {
    DeidentificationOption.CLEAN_PIXEL_DATA: "113101",
    DeidentificationOption.CLEAN_RECOGNIZABLE_VISUAL_FEATURES: "113102",
    DeidentificationOption.CLEAN_GRAPHICS: "113103",
    DeidentificationOption.CLEAN_STRUCTURED_CONTENT: "113104",
    DeidentificationOption.CLEAN_DESCRIPTORS: "113105",
    DeidentificationOption.RETAIN_LONGITUDINAL_FULL_DATES: "113106",
    DeidentificationOption.RETAIN_LONGITUDINAL_MODIFIED_DATES: "113107",
    DeidentificationOption.RETAIN_PATIENT_CHARACTERISTICS: "113108",
    DeidentificationOption.RETAIN_DEVICE_IDENTITY: "113109",
    DeidentificationOption.RETAIN_UIDS: "113110",
    DeidentificationOption.RETAIN_SAFE_PRIVATE: "113111",
    DeidentificationOption.RETAIN_INSTITUTION_IDENTITY: "113112",
}
BASIC_PROFILE_CODE = "113100"
