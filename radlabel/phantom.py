"""Synthetic studies with known ground truth: a CT body phantom and an MR head phantom.

Both are complete DICOM image IODs (CT Image, MR Image) with fake but
realistic PHI in the headers, so that every later stage (validation,
de-identification, windowing, agreement against truth) has something real to
work on. Everything is deterministic for a given seed: the same seed gives the
same UIDs, pixels and PHI.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, PYDICOM_IMPLEMENTATION_UID

from radlabel.geometry import VolumeGeometry

CT_LABELS = {1: "soft_tissue", 2: "fat", 3: "lung", 4: "liver", 5: "bone", 6: "liver_lesion", 7: "lung_nodule"}
CT_HU = {0: -1000, 1: 40, 2: -100, 3: -850, 4: 60, 5: 700, 6: 10, 7: 30}
MR_LABELS = {1: "brain", 2: "ventricles", 3: "oedema", 4: "necrotic_core", 5: "enhancing_tumour", 6: "skull"}
MR_SIGNAL = {0: 0, 1: 600, 2: 180, 3: 480, 4: 220, 5: 1150, 6: 90}

_GIVEN = ["JANE", "JOHN", "MARIA", "AHMED", "WEI", "FATIMA", "OLIVIA", "KWAME", "SOFIA", "LUCAS"]
_FAMILY = ["DOE", "SMITH", "GARCIA", "OKAFOR", "NGUYEN", "MUELLER", "ROSSI", "KOWALSKI", "TANAKA", "BROWN"]
_INSTITUTIONS = ["St. Elsewhere General Hospital", "Riverside University Medical Center", "Northgate Clinic"]


@dataclass
class Lesion:
    """A lesion of known position and size (the truth a reader should find)."""

    label: str
    centre_lps: tuple[float, float, float]
    radius_mm: float
    voxels: int = 0

    def as_dict(self) -> dict:
        return {"label": self.label, "centre_lps_mm": list(self.centre_lps), "radius_mm": self.radius_mm,
                "diameter_mm": 2 * self.radius_mm, "voxels": self.voxels}


@dataclass
class SyntheticStudy:
    """DICOM datasets (one series, slice order) and the label map that made them."""

    datasets: list[Dataset]
    labelmap: np.ndarray  # (slices, rows, columns) uint8
    labels: dict[int, str]
    geometry: VolumeGeometry
    lesions: list[Lesion] = field(default_factory=list)

    @property
    def study_uid(self) -> str:
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def series_uid(self) -> str:
        return str(self.datasets[0].SeriesInstanceUID)

    def truth(self) -> dict:
        """The ground truth as JSON-ready data (no PHI: UIDs, geometry, labels, lesions)."""
        counts = np.bincount(self.labelmap.ravel(), minlength=max(self.labels) + 1)
        return {
            "study_instance_uid": self.study_uid,
            "series_instance_uid": self.series_uid,
            "modality": str(self.datasets[0].Modality),
            "shape": list(self.labelmap.shape),
            "spacing_mm": list(self.geometry.spacing),
            "affine_lps": self.geometry.affine_lps().tolist(),
            "labels": {str(v): {"name": n, "voxels": int(counts[v])} for v, n in self.labels.items()},
            "lesions": [lesion.as_dict() for lesion in self.lesions],
        }

    def write(self, directory: Path) -> Path:
        """Write the series (files named by SOP Instance UID) and the truth beside it."""
        directory.mkdir(parents=True, exist_ok=True)
        for ds in self.datasets:
            ds.save_as(directory / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
        np.save(directory / "truth_labelmap.npy", self.labelmap)
        (directory / "truth.json").write_text(json.dumps(self.truth(), indent=1))
        return directory


def _uid_key(*parameters) -> str:
    return "-".join(str(p) for p in parameters)


def _uid(seed_text: str) -> str:
    return pydicom.uid.generate_uid(entropy_srcs=["radlabel-phantom", seed_text])


@dataclass
class FakePatient:
    """Fake but realistic PHI, drawn from a seed."""

    name: str
    patient_id: str
    birth_date: str
    sex: str
    institution: str
    accession: str
    referring: str
    operator: str
    study_date: str

    @classmethod
    def from_seed(cls, seed: int) -> "FakePatient":
        rng = np.random.default_rng(seed + 7919)
        birth = _dt.date(1940, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 365 * 60)))
        study = _dt.date(2024, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 700)))
        return cls(
            name=f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN)}",
            patient_id=f"MRN{int(rng.integers(1_000_000, 9_999_999))}",
            birth_date=birth.strftime("%Y%m%d"),
            sex=str(rng.choice(["F", "M"])),
            institution=str(rng.choice(_INSTITUTIONS)),
            accession=f"ACC{int(rng.integers(10_000_000, 99_999_999))}",
            referring=f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN)}^^DR",
            operator=f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN)}",
            study_date=study.strftime("%Y%m%d"),
        )

    def phi_strings(self) -> list[str]:
        """Every identifying value, for PHI scans in tests."""
        family, given = self.name.split("^")
        return [self.name, family, given, self.patient_id, self.birth_date, self.accession, self.institution]


def _base_dataset(patient: FakePatient, sop_class: str, modality: str, seed: int, series_number: int,
                  description: str, body_part: str, uid_key: str) -> Dataset:
    """``uid_key`` names every parameter of the volume: a UID names one object, so a phantom made with other
    sizes (another slice count, say) is another study, never new instances in the same series."""
    ds = Dataset()
    # Patient
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = f"{int(patient.study_date[:4]) - int(patient.birth_date[:4]):03d}Y"
    ds.PatientWeight = "72"
    # General Study
    ds.StudyInstanceUID = _uid(f"study-{modality}-{uid_key}")
    ds.StudyDate = patient.study_date
    ds.StudyTime = "101500"
    ds.ReferringPhysicianName = patient.referring
    ds.StudyID = str(1000 + seed)
    ds.AccessionNumber = patient.accession
    ds.StudyDescription = f"{modality} {body_part.title()} research phantom"
    # General Series
    ds.Modality = modality
    ds.SeriesInstanceUID = _uid(f"series-{modality}-{uid_key}-{series_number}")
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.SeriesDate = patient.study_date
    ds.SeriesTime = "101700"
    ds.BodyPartExamined = body_part.upper()
    ds.PatientPosition = "HFS"
    ds.OperatorsName = patient.operator
    # Frame of Reference
    ds.FrameOfReferenceUID = _uid(f"for-{modality}-{uid_key}")
    ds.PositionReferenceIndicator = ""
    # General Equipment
    ds.Manufacturer = "RADLABEL PHANTOMS"
    ds.ManufacturerModelName = "Synthetic CT-1" if modality == "CT" else "Synthetic MR-3T"
    ds.InstitutionName = patient.institution
    ds.InstitutionAddress = "1 Hospital Road, Springfield"
    ds.StationName = f"{modality}STATION{seed % 7}"
    ds.DeviceSerialNumber = f"SN{seed:06d}"
    ds.SoftwareVersions = "radlabel-phantom 1"
    # SOP Common
    ds.SOPClassUID = sop_class
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.InstanceCreationDate = patient.study_date
    ds.BurnedInAnnotation = "NO"
    return ds


def _finish_slice(template: Dataset, geometry: VolumeGeometry, k: int, pixels: np.ndarray, seed_text: str) -> Dataset:
    ds = copy.deepcopy(template)  # no element shared between slices
    ds.SOPInstanceUID = _uid(f"{seed_text}-instance-{k}")
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = geometry.slice_position(k)
    ds.ImageOrientationPatient = geometry.image_orientation
    ds.SliceLocation = geometry.slice_position(k)[2]
    ds.PixelSpacing = list(geometry.pixel_spacing)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def _inside_ellipsoid(x, y, z, centre, radii) -> np.ndarray:
    return ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2 <= 1.0


def _place_spheres(rng, count, organ_centre, organ_radii, radius_range, label) -> list[Lesion]:
    """Spheres wholly inside an ellipsoidal organ, not touching each other."""
    lesions: list[Lesion] = []
    for _ in range(count * 50):
        if len(lesions) == count:
            break
        radius = float(rng.uniform(*radius_range))
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        fraction = rng.uniform(0, 0.6)
        centre = np.asarray(organ_centre) + direction * fraction * np.asarray(organ_radii)
        # Keep a margin of one radius inside the organ.
        shrunk = np.asarray(organ_radii) - radius - 2
        if np.any(shrunk <= 0) or np.sum(((centre - organ_centre) / shrunk) ** 2) > 1:
            continue
        if any(np.linalg.norm(centre - np.asarray(l.centre_lps)) < radius + l.radius_mm + 4 for l in lesions):
            continue
        lesions.append(Lesion(label, tuple(round(float(c), 2) for c in centre), round(radius, 2)))
    return lesions


def burn_in_text(stored: np.ndarray, lines: list[str], value: int) -> np.ndarray:
    """Draw text into the top-left corner of a slice, as old scanners and screen captures do."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("L", (stored.shape[1], stored.shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(12, stored.shape[0] // 24))
    for number, line in enumerate(lines):
        draw.text((8, 8 + number * (stored.shape[0] // 20)), line, fill=255, font=font)
    out = stored.copy()
    out[np.asarray(canvas) > 127] = value
    return out


def corner_text_mask(shape: tuple[int, int], corners: dict[tuple[bool, bool], list[str]],
                     font_size: int = 16) -> np.ndarray:
    """Where text lines drawn into a slice's corners fall: ``corners`` maps (bottom?, right?) to its lines,
    as monitors and screen captures print patient, site and time."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("L", (shape[1], shape[0]), 0)
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=font_size)
    step = font_size + 4
    for (bottom, right), lines in corners.items():
        for number, line in enumerate(lines):
            x = shape[1] - 6 - draw.textlength(line, font=font) if right else 6
            y = (shape[0] - 6 - step * len(lines) if bottom else 6) + step * number
            draw.text((x, y), line, fill=255, font=font)
    return np.asarray(canvas) > 127


def burn_corner_text(ds: Dataset, corners: dict[tuple[bool, bool], list[str]]) -> np.ndarray:
    """Write text into the slice's corners at its top value, as a scanner burns in its overlay, and mark
    the header so; returns where the text is."""
    from radlabel.ingest.burned_in import store_native

    pixels = ds.pixel_array.copy()
    text = corner_text_mask(pixels.shape, corners)
    pixels[text] = pixels.max()
    store_native(ds, pixels, "MONOCHROME2")
    ds.BurnedInAnnotation = "YES"
    return text


def make_ct_study(seed: int = 0, slices: int = 60, size: int = 512, pixel_spacing: float = 0.8,
                  slice_spacing: float = 2.5, noise_hu: float = 12.0, liver_lesions: int = 2,
                  lung_nodules: int = 2, burned_in: bool = False) -> SyntheticStudy:
    """A chest-abdomen CT phantom with HU-realistic tissues and lesions of known size.

    Tissues: air, subcutaneous fat, soft tissue, lungs (upper half), liver
    (patient's right, lower half), a vertebral column, hypodense liver lesions
    and solid lung nodules. Stored as 12-bit unsigned with RescaleIntercept -1024.
    """
    rng = np.random.default_rng(seed)
    geometry = VolumeGeometry.axial((slices, size, size), (pixel_spacing, pixel_spacing), slice_spacing)
    length = slices * slice_spacing
    fov = size * pixel_spacing
    body_r = (0.39 * fov, 0.28 * fov)
    lungs = [((side * 0.17 * fov, -0.01 * fov, length / 4), (0.13 * fov, 0.18 * fov, length / 3)) for side in (-1, 1)]
    liver = ((-0.14 * fov, -0.02 * fov, -length / 4), (0.2 * fov, 0.17 * fov, length / 3))
    spine_centre, spine_r = (0.0, 0.19 * fov), 0.045 * fov
    lesions = _place_spheres(rng, liver_lesions, liver[0], liver[1], (4.0, 12.0), "liver_lesion")
    for lung_centre, lung_radii in lungs:
        lesions += _place_spheres(rng, (lung_nodules + 1) // 2, lung_centre, lung_radii, (3.0, 7.0), "lung_nodule")
    lesions = [l for l in lesions if l.label == "liver_lesion"] + [l for l in lesions if l.label == "lung_nodule"][:lung_nodules]

    x, y, _ = geometry.voxel_centres(0)
    labelmap = np.zeros((slices, size, size), np.uint8)
    in_body = ((x / body_r[0]) ** 2 + (y / body_r[1]) ** 2) <= 1
    in_inner = ((x / (body_r[0] - 14)) ** 2 + (y / (body_r[1] - 14)) ** 2) <= 1
    in_spine = ((x - spine_centre[0]) ** 2 + (y - spine_centre[1]) ** 2) <= spine_r**2
    for k in range(slices):
        z = geometry.slice_position(k)[2]
        plane = labelmap[k]
        plane[in_body] = 1
        plane[in_body & ~in_inner] = 2
        for centre, radii in lungs:
            plane[in_inner & _inside_ellipsoid(x, y, z, centre, radii)] = 3
        plane[in_inner & _inside_ellipsoid(x, y, z, *liver)] = 4
        plane[in_spine] = 5
        for lesion in lesions:
            if abs(z - lesion.centre_lps[2]) <= lesion.radius_mm:
                r = lesion.radius_mm
                plane[_inside_ellipsoid(x, y, z, lesion.centre_lps, (r, r, r))] = 6 if lesion.label == "liver_lesion" else 7
    for lesion in lesions:
        lesion.voxels = int(np.count_nonzero(_lesion_component(labelmap, lesion, geometry)))

    hu_lookup = np.array([CT_HU[v] for v in range(len(CT_HU))], np.float32)
    patient = FakePatient.from_seed(seed)
    uid_key = _uid_key(seed, slices, size, pixel_spacing, slice_spacing, noise_hu, liver_lesions, lung_nodules, burned_in)
    template = _ct_header(patient, seed, slice_spacing, burned_in, uid_key)
    datasets = []
    for k in range(slices):
        hu = hu_lookup[labelmap[k]] + rng.normal(0, noise_hu, (size, size)).astype(np.float32)
        stored = np.clip(np.round(hu + 1024), 0, 4095)
        if burned_in:  # the patient's name and ID in the pixels, bright in every window
            stored = burn_in_text(stored, [patient.name.replace("^", " "), patient.patient_id], 4095)
        datasets.append(_finish_slice(template, geometry, k, stored, f"ct-{uid_key}"))
    return SyntheticStudy(datasets, labelmap, dict(CT_LABELS), geometry, lesions)


def _ct_header(patient: FakePatient, seed: int, slice_spacing: float, burned_in: bool, uid_key: str):
    """The header every slice of the CT phantom shares: a contrast-enhanced chest-abdomen CT in HU."""
    template = _base_dataset(patient, CTImageStorage, "CT", seed, 2, "Chest-Abdomen 2.5mm soft tissue", "chest",
                             uid_key)
    template.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    template.KVP = "120"
    template.SliceThickness = slice_spacing
    template.SpacingBetweenSlices = slice_spacing
    template.ConvolutionKernel = "B30f"
    template.ContrastBolusAgent = "Iohexol 350"
    template.XRayTubeCurrent = 220
    template.ExposureTime = 500
    template.AcquisitionNumber = 1
    template.RescaleIntercept = -1024
    template.RescaleSlope = 1
    template.RescaleType = "HU"
    template.BitsAllocated = 16
    template.BitsStored = 12
    template.HighBit = 11
    template.WindowCenter = [40, -600]
    template.WindowWidth = [400, 1500]
    if burned_in:
        template.BurnedInAnnotation = "YES"
    return template


def _lesion_component(labelmap: np.ndarray, lesion: Lesion, geometry: VolumeGeometry) -> np.ndarray:
    """Voxels of the lesion's label whose centres lie inside its sphere."""
    value = 6 if lesion.label == "liver_lesion" else 7
    centre = geometry.lps_to_index(lesion.centre_lps)
    reach = np.ceil(lesion.radius_mm / np.asarray(geometry.spacing)).astype(int) + 1
    low = np.maximum(np.floor(centre).astype(int) - reach, 0)
    high = np.minimum(np.ceil(centre).astype(int) + reach + 1, labelmap.shape)
    kk, jj, ii = np.meshgrid(*(np.arange(a, b) for a, b in zip(low, high)), indexing="ij")
    points = geometry.affine_lps() @ np.stack([ii.ravel(), jj.ravel(), kk.ravel(), np.ones(ii.size)])
    inside = (np.linalg.norm(points[:3].T - lesion.centre_lps, axis=1) <= lesion.radius_mm).reshape(kk.shape)
    return inside & (labelmap[low[0]:high[0], low[1]:high[1], low[2]:high[2]] == value)


def make_mr_study(seed: int = 0, slices: int = 40, size: int = 512, pixel_spacing: float = 0.5,
                  slice_spacing: float = 4.0, noise: float = 20.0) -> SyntheticStudy:
    """A T1 post-contrast head MR phantom with a glioma-like tumour of known sub-regions.

    Skull, brain, ventricles, and a tumour made of oedema, a necrotic core and
    an enhancing rim (the sub-regions of the MR brain tumour protocol).
    """
    rng = np.random.default_rng(seed + 101)
    geometry = VolumeGeometry.axial((slices, size, size), (pixel_spacing, pixel_spacing), slice_spacing)
    length = slices * slice_spacing
    head_r = (70.0, 90.0, max(length / 2, 10.0))
    brain_r = (head_r[0] - 7, head_r[1] - 7, head_r[2] - 4)
    side = 1 if seed % 2 else -1
    tumour_c = (side * 30.0 + rng.uniform(-5, 5), rng.uniform(-25, 15), rng.uniform(-0.15, 0.15) * length)
    oedema_r, rim_r, core_r = float(rng.uniform(20, 28)), float(rng.uniform(11, 14)), float(rng.uniform(5, 8))
    x, y, _ = geometry.voxel_centres(0)
    labelmap = np.zeros((slices, size, size), np.uint8)
    for k in range(slices):
        z = geometry.slice_position(k)[2]
        plane = labelmap[k]
        plane[_inside_ellipsoid(x, y, z, (0, 0, 0), head_r)] = 6
        plane[_inside_ellipsoid(x, y, z, (0, 0, 0), brain_r)] = 1
        for dx in (-8.0, 8.0):
            plane[_inside_ellipsoid(x, y, z, (dx, -5.0, 0.0), (5.0, 22.0, 12.0))] = 2
        for radius, value in ((oedema_r, 3), (rim_r, 5), (core_r, 4)):
            plane[_inside_ellipsoid(x, y, z, tumour_c, (radius,) * 3) & (plane != 0)] = value
    lesions = [Lesion(name, tuple(round(c, 2) for c in tumour_c), round(r, 2))
               for name, r in (("oedema", oedema_r), ("enhancing_tumour", rim_r), ("necrotic_core", core_r))]
    for lesion in lesions:
        value = {name: v for v, name in MR_LABELS.items()}[lesion.label]
        lesion.voxels = int(np.count_nonzero(labelmap == value))

    signal = np.array([MR_SIGNAL[v] for v in range(len(MR_SIGNAL))], np.float32)
    uid_key = _uid_key(seed, slices, size, pixel_spacing, slice_spacing, noise)
    template = _mr_header(FakePatient.from_seed(seed + 5000), seed, slice_spacing, uid_key)
    datasets = []
    for k in range(slices):
        values = signal[labelmap[k]] + np.abs(rng.normal(0, noise, (size, size))).astype(np.float32)
        datasets.append(_finish_slice(template, geometry, k, np.clip(np.round(values), 0, 4095), f"mr-{uid_key}"))
    return SyntheticStudy(datasets, labelmap, dict(MR_LABELS), geometry, lesions)


def study_digest(study: SyntheticStudy) -> str:
    """A short digest of the pixels (tests use it to check determinism)."""
    digest = hashlib.sha256()
    for ds in study.datasets:
        digest.update(ds.PixelData)
    return digest.hexdigest()[:16]


def _mr_header(patient: FakePatient, seed: int, slice_spacing: float, uid_key: str):
    """The header every slice of the MR phantom shares: a T1 MPRAGE after gadolinium."""
    template = _base_dataset(patient, MRImageStorage, "MR", seed, 5, "AX T1 MPRAGE +C", "head", uid_key)
    template.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM"]
    template.ScanningSequence = "GR"
    template.SequenceVariant = ["SP", "MP"]
    template.ScanOptions = "IR"
    template.MRAcquisitionType = "2D"
    template.SequenceName = "*tfl3d1"
    template.RepetitionTime = 2300
    template.EchoTime = 2.98
    template.InversionTime = 900
    template.EchoTrainLength = 1
    template.FlipAngle = 9
    template.MagneticFieldStrength = 3
    template.ImagingFrequency = 123.2
    template.SliceThickness = slice_spacing
    template.SpacingBetweenSlices = slice_spacing
    template.ContrastBolusAgent = "Gadobutrol"
    template.BitsAllocated = 16
    template.BitsStored = 12
    template.HighBit = 11
    template.WindowCenter = 600
    template.WindowWidth = 1200
    return template
