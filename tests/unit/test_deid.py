"""De-identification: PHI gone, clinical metadata kept, pseudonyms repeatable, options honoured."""

from __future__ import annotations

import pytest
from pydicom.tag import Tag

from radlabel.ingest.deid import Deidentifier
from radlabel.ingest.render import window
from radlabel.ingest import burned_in
from radlabel.ingest.series import frame_pixels, frames_of
from radlabel.phantom import FakePatient, make_ct_study
from radlabel.protocol.enum import DeidentificationOption as Option

KEY = bytes(range(32))


def dump(ds) -> str:
    return "\n".join(str(element.value) for element in ds.iterall() if element.tag != Tag("PixelData"))


def test_basic_profile_removes_every_phi_string_and_keeps_clinical_metadata():
    study = make_ct_study(seed=31, slices=3, size=64)
    source = study.datasets[0]
    out = Deidentifier(KEY).deidentify(source)
    text = dump(out)
    for value in FakePatient.from_seed(31).phi_strings() + [source.StudyInstanceUID, source.SOPInstanceUID,
                                                            source.PatientBirthDate, source.StudyDate]:
        assert value not in text, value
    assert out.PatientIdentityRemoved == "YES" and out.LongitudinalTemporalInformationModified == "REMOVED"
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    for keyword in ("PixelSpacing", "SliceThickness", "ImageOrientationPatient", "ImagePositionPatient", "KVP",
                    "ConvolutionKernel", "Manufacturer", "RescaleSlope", "RescaleIntercept"):
        assert out.get(keyword) == source.get(keyword), keyword
    # the scanner model and software name a site's scanner: device identity, kept only under its option
    assert "ManufacturerModelName" not in out and "SoftwareVersions" not in out
    kept = Deidentifier(KEY, [Option.RETAIN_DEVICE_IDENTITY]).deidentify(source)
    assert (kept.ManufacturerModelName, kept.SoftwareVersions) == (source.ManufacturerModelName, source.SoftwareVersions)
    assert not out.ContrastBolusAgent  # Z/D under the Basic Profile: emptied (Type 2), free text
    assert Deidentifier(KEY, [Option.CLEAN_DESCRIPTORS]).deidentify(source).ContrastBolusAgent == source.ContrastBolusAgent
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert source.PatientName == FakePatient.from_seed(31).name  # the source is untouched


def test_pseudonyms_are_keyed_repeatable_and_consistent_within_a_study():
    study = make_ct_study(seed=32, slices=3, size=64)
    first = [Deidentifier(KEY).deidentify(ds) for ds in study.datasets]
    again = [Deidentifier(KEY).deidentify(ds) for ds in study.datasets]
    other_key = Deidentifier(bytes(32)).deidentify(study.datasets[0])
    assert [d.SOPInstanceUID for d in first] == [d.SOPInstanceUID for d in again]
    assert len({d.StudyInstanceUID for d in first}) == 1 and len({d.SOPInstanceUID for d in first}) == 3
    assert first[0].PatientID == again[0].PatientID != other_key.PatientID
    assert first[0].SOPInstanceUID != other_key.SOPInstanceUID
    assert all(len(d.SOPInstanceUID) <= 64 and d.SOPInstanceUID.startswith("2.25.") for d in first)


def test_modified_dates_shift_consistently_per_patient_and_birth_date_goes():
    study = make_ct_study(seed=33, slices=2, size=64)
    deid = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, Option.RETAIN_PATIENT_CHARACTERISTICS])
    out = deid.deidentify(study.datasets[0])
    assert out.StudyDate != study.datasets[0].StudyDate and len(out.StudyDate) == 8
    assert out.StudyDate == out.SeriesDate  # same shift for every date of the patient
    assert not out.PatientBirthDate
    assert out.PatientSex == study.datasets[0].PatientSex
    age = int(str(study.datasets[0].PatientAge)[:3])
    assert out.PatientAge == f"{min(age // 5 * 5, 90):03d}Y"  # in its 5-year band
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    full = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_FULL_DATES]).deidentify(study.datasets[0])
    assert full.StudyDate == study.datasets[0].StudyDate


def test_device_and_institution_options():
    source = make_ct_study(seed=34, slices=2, size=64).datasets[0]
    plain = Deidentifier(KEY).deidentify(source)
    assert source.InstitutionName not in dump(plain) and source.DeviceSerialNumber not in dump(plain)
    kept = Deidentifier(KEY, [Option.RETAIN_DEVICE_IDENTITY, Option.RETAIN_INSTITUTION_IDENTITY]).deidentify(source)
    assert kept.DeviceSerialNumber == source.DeviceSerialNumber and kept.InstitutionName == source.InstitutionName


def test_descriptors_are_cleaned_of_identifying_words():
    source = make_ct_study(seed=35, slices=2, size=64).datasets[0]
    source.SeriesDescription = f"AX CHEST for {source.PatientName.family_name}"
    out = Deidentifier(KEY, [Option.CLEAN_DESCRIPTORS]).deidentify(source)
    assert out.SeriesDescription == "AX CHEST for"


def test_a_manufacturer_naming_the_institution_is_cleaned_and_other_kept_text_stays_exact():
    # pydicom's mlut_18.dcm and vlut_04.dcm: Manufacturer and InstitutionName are both "OFFIS" (an institute's own
    # software made them); the allow-listed Manufacturer carried the institution's name into the output.
    source = make_ct_study(seed=36, slices=2, size=64).datasets[0]
    source.InstitutionName = source.Manufacturer = "OFFIS"
    source.ConvolutionKernel = ["B30f", "OFFIS sharp"]
    out = Deidentifier(KEY).deidentify(source)
    assert "OFFIS" not in dump(out) and not out.Manufacturer
    assert list(out.ConvolutionKernel) == ["B30f", "sharp"]
    plain = make_ct_study(seed=36, slices=2, size=64).datasets[0]
    assert Deidentifier(KEY).deidentify(plain).Manufacturer == plain.Manufacturer


@pytest.mark.parametrize("name, value, band", [("PatientAge", "072Y", "070Y"), ("PatientAge", "094Y", "090Y"),
                                                ("PatientAge", "018M", "000Y"), ("PatientWeight", "73.4", "70"),
                                                ("PatientSize", "1.78", "1.75")])
def test_retained_patient_characteristics_are_kept_in_bands(name, value, band):
    source = make_ct_study(seed=38, slices=2, size=64).datasets[0]
    setattr(source, name, value)
    out = Deidentifier(KEY, [Option.RETAIN_PATIENT_CHARACTERISTICS]).deidentify(source)
    assert str(out[name].value) == band


def test_burned_in_text_is_found_by_ocr_and_masked_on_a_phantom():
    study = make_ct_study(seed=36, slices=1, size=512, burned_in=True)
    patient = FakePatient.from_seed(36)
    assert "BurnedInAnnotation is YES" in burned_in.header_evidence(study.datasets[0])
    frame = frames_of(study.datasets[0])[0]
    values = frame_pixels(frame)
    words = {box.text for box in burned_in.find_text(window(values, 40, 400))}
    assert patient.patient_id in words
    masked = burned_in.mask_boxes(values, burned_in.find_text(window(values, 40, 400)))
    assert burned_in.find_text(window(masked, 40, 400)) == []


def test_head_series_are_flagged_for_face_risk():
    from radlabel.phantom import make_mr_study

    head = make_mr_study(seed=3, slices=4, size=64).datasets[0]
    assert "recognisable face" in burned_in.face_risk(head, coverage_mm=160)
    assert burned_in.face_risk(head, coverage_mm=20) is None
    body = make_ct_study(seed=3, slices=2, size=64).datasets[0]
    assert burned_in.face_risk(body, coverage_mm=300) is None
