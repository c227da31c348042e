"""DICOM-SEG: the one place masks become segmentations and back (highdicom).

Binary SEG, uncompressed, empty frames omitted: the form OHIF, dcmqi and
Orthanc all read. Segments carry the protocol's coded concepts.
"""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from radlabel import __version__
from radlabel.protocol.content import CodedConcept, LabelClass
from radlabel.protocol.enum import Geometry
from radlabel.protocol.template import Protocol


def _code(concept: CodedConcept) -> Code:
    return Code(concept.value, concept.scheme, concept.meaning)


def segment_description(number: int, cls: LabelClass, algorithm: str | None = None) -> hd.seg.SegmentDescription:
    if algorithm:
        kind = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        identification = hd.AlgorithmIdentificationSequence(name=algorithm, version=__version__,
                                                            family=Code("113037", "DCM", "Neural Network"))
    else:
        kind, identification = hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=cls.name,
        segmented_property_category=_code(cls.category),
        segmented_property_type=_code(cls.type),
        algorithm_type=kind,
        algorithm_identification=identification,
        tracking_uid=generate_uid(),
        tracking_id=cls.name,
        anatomic_regions=[_code(cls.anatomic_region)] if cls.anatomic_region else None,
    )


def _source_layout(source: list) -> tuple[list[Dataset], np.ndarray]:
    """(source images for highdicom, for each of them or of their frames the slice index it shows).

    ``source`` is datasets (single-frame, slices in order) or ``Frame`` objects of a sorted series: a
    multi-frame image is handed to highdicom once, with its frames in stored order.
    """
    from radlabel.ingest.series import Frame

    if not source or not isinstance(source[0], Frame):
        return list(source), np.arange(len(source))
    instances = {id(f.instance): f.instance for f in source}
    if len(instances) == len(source):
        return [f.instance for f in source], np.arange(len(source))
    if len(instances) > 1:
        raise ValueError(f"its {len(source)} frames come from {len(instances)} instances, some multi-frame; a SEG "
                         "references either single-frame images or one multi-frame image")
    order = np.empty(len(source), dtype=int)
    for slot, frame in enumerate(source):
        order[frame.frame_index] = slot
    if int(source[0].instance.get("NumberOfFrames", 1) or 1) != len(source):
        raise ValueError("only some frames of its multi-frame image form the series")
    return [source[0].instance], order


def encode(source: list, masks: dict[str, np.ndarray], protocol: Protocol | dict[str, LabelClass], *,
           series_description: str, content_creator: str = "", algorithm: str | None = None, series_number: int = 900,
           content_description: str = "", series_uid: str | None = None, sop_uid: str | None = None) -> Dataset:
    """A binary SEG over ``source`` (slices in order) with one segment per class in ``masks``.

    ``source`` is the series' datasets in slice order, or its sorted ``Frame`` objects (enhanced
    multi-frame images). ``masks[class name]`` is a (slices, rows, columns) boolean array aligned with
    ``source``; the classes (codes, names) come from the protocol, or from a name -> LabelClass mapping.
    """
    lookup = protocol.label_class if isinstance(protocol, Protocol) else protocol.get
    classes = [lookup(name) for name in masks]
    unknown = [name for name, cls in zip(masks, classes) if cls is None]
    if unknown:
        raise ValueError(f"classes {unknown} have no coded description")
    source, order = _source_layout(source)
    stacked = np.stack([np.asarray(masks[c.name], dtype=bool) for c in classes], axis=-1)[order]
    seg = hd.seg.Segmentation(
        source_images=source,
        pixel_array=stacked.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment_description(n, c, algorithm) for n, c in enumerate(classes, 1)],
        series_instance_uid=series_uid or generate_uid(),
        series_number=series_number,
        sop_instance_uid=sop_uid or generate_uid(),
        instance_number=1,
        manufacturer="radlabel",
        manufacturer_model_name="radlabel",
        software_versions=__version__,
        device_serial_number="radlabel",
        content_description=(content_description or (f"{protocol.id} {protocol.version}"
                                                     if isinstance(protocol, Protocol) else "radlabel"))[:64],
        content_creator_name=content_creator or None,
        content_label="RADLABEL",
        omit_empty_frames=True,
    )
    seg.SeriesDescription = series_description[:64]
    return seg


ANATOMICAL_STRUCTURE = CodedConcept(value="91723000", scheme="SCT", meaning="Anatomical Structure")
_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (67, 99, 216), (245, 130, 49), (145, 30, 180),
            (66, 212, 244), (240, 50, 230), (191, 239, 69), (250, 190, 212), (70, 153, 144), (220, 190, 255),
            (154, 99, 36), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 216, 177),
            (0, 0, 117), (169, 169, 169)]


def structure_class(label: int, name: str) -> LabelClass:
    """A segment for a named anatomical structure (label maps from other tools), coded when DICOM knows it."""
    from radlabel.protocol.codes import concept_for_name

    found = concept_for_name(name)
    kind = CodedConcept(value=found[0], scheme="SCT", meaning=found[1]) if found else ANATOMICAL_STRUCTURE
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_") or f"label_{label}"
    if not slug[0].isalpha():
        slug = "s_" + slug
    return LabelClass.model_construct(
        name=slug[:48], display_name=name[:64], color="#%02x%02x%02x" % _PALETTE[label % len(_PALETTE)],
        geometry=[], read_in="", category=ANATOMICAL_STRUCTURE, type=kind, type_modifier=None,
        anatomic_region=None, tiers=[], boundary=None, landmarks=None)


@dataclass
class DecodedSegment:
    number: int
    label: str
    type_code: str
    mask: np.ndarray  # (slices, rows, columns) bool, in the order of the source UIDs asked for


def decode(ds: Dataset, source_sop_instance_uids: list[str]) -> list[DecodedSegment]:
    """Every segment of a SEG as masks over the given source instances (in that order)."""
    seg = hd.seg.Segmentation.from_dataset(ds)
    numbers = list(seg.segment_numbers)
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    wanted = [uid for uid in source_sop_instance_uids if uid in referenced]
    pixels = seg.get_pixels_by_source_instance(wanted, segment_numbers=numbers, combine_segments=False,
                                               assert_missing_frames_are_empty=True)
    index = {uid: i for i, uid in enumerate(wanted)}
    out = []
    for position, number in enumerate(numbers):
        description = seg.get_segment_description(number)
        mask = np.zeros((len(source_sop_instance_uids), *pixels.shape[1:3]), dtype=bool)
        for slot, uid in enumerate(source_sop_instance_uids):
            if uid in index:
                mask[slot] = pixels[index[uid], :, :, position] > 0
        out.append(DecodedSegment(number, str(description.segment_label),
                                  str(description.segmented_property_type.value), mask))
    return out


def segment_class(protocol: Protocol, label: str, type_code: str) -> LabelClass | None:
    """The protocol class a segment is a read of: the class its label names (name or display name, in any
    case: OHIF's and radlabel's SEGs use the name, other tools often the display name), else the one class
    coded with its segmented property type (none when several classes share that type)."""
    wanted = label.strip().lower()
    for cls in protocol.classes:
        if wanted in (cls.name.lower(), cls.display_name.lower()):
            return cls
    by_type = [c for c in protocol.classes if c.type.value == type_code]
    return by_type[0] if len(by_type) == 1 else None


def class_masks(segments: list[DecodedSegment], protocol: Protocol) -> tuple[dict[str, np.ndarray], list[str]]:
    """Decoded segments as one mask per mask class of the protocol (segments of one class are joined), and the
    labels of the segments no mask class takes. The one segment-to-class rule of every SEG import."""
    masks: dict[str, np.ndarray] = {}
    skipped = []
    for segment in segments:
        cls = segment_class(protocol, segment.label, segment.type_code)
        if cls is None or Geometry.MASK not in cls.geometry:
            skipped.append(segment.label)
            continue
        masks[cls.name] = masks[cls.name] | segment.mask if cls.name in masks else segment.mask
    return masks, skipped
