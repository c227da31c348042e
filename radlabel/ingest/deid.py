"""De-identification: DICOM PS3.15 Basic Profile with the protocol's retention options.

The attribute table (which attribute gets D/Z/X/U) is the PS3.15 Table E.1-1
as packaged by dicom-anonymizer; we apply it ourselves in one recursive pass
because we need keyed, repeatable pseudonyms (the same study maps to the same
pseudonym on every sync), per-patient date shifts and the retention options,
and because one pass is faster than that package's per-tag loop.

Identifiers become HMAC-SHA256 pseudonyms under a secret key kept in the state
directory: ``2.25.<integer>`` UIDs and ``RL…`` patient IDs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass, field

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from radlabel.protocol.enum import BASIC_PROFILE_CODE, DeidentificationOption as Option

# Codes used with DeidentificationMethodCodeSequence (CID 7050).
_METHOD_MEANINGS = {
    BASIC_PROFILE_CODE: "Basic Application Confidentiality Profile",
    "113101": "Clean Pixel Data Option", "113102": "Clean Recognizable Visual Features Option",
    "113103": "Clean Graphics Option", "113104": "Clean Structured Content Option",
    "113105": "Clean Descriptors Option", "113106": "Retain Longitudinal Temporal Information Full Dates Option",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
    "113108": "Retain Patient Characteristics Option", "113109": "Retain Device Identity Option",
    "113110": "Retain UIDs Option", "113111": "Retain Safe Private Option", "113112": "Retain Institution Identity Option",
}

# Attributes each retention option keeps (PS3.15 Table E.1-1 option columns, the commonly present ones).
_RETAINED = {
    Option.RETAIN_DEVICE_IDENTITY: ["StationName", "DeviceSerialNumber", "DeviceUID", "GantryID", "DetectorID",
                                    "PlateID", "CassetteID", "GeneratorID", "DeviceDescription", "DeviceLabel"],
    Option.RETAIN_INSTITUTION_IDENTITY: ["InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
                                         "InstitutionCodeSequence"],
    Option.RETAIN_PATIENT_CHARACTERISTICS: ["PatientSex", "PatientAge", "PatientSize", "PatientWeight", "EthnicGroup",
                                            "SmokingStatus", "PregnancyStatus", "PatientSexNeutered",
                                            "PatientBodyMassIndex"],
}
# Free-text descriptors kept (after scrubbing identifying strings) under Clean Descriptors, and the
# clinically relevant ones radlabel always keeps that way: readers need contrast and protocol names.
_DESCRIPTORS = ["StudyDescription", "SeriesDescription", "ProtocolName", "PerformedProcedureStepDescription",
                "RequestedProcedureDescription", "ImageComments", "AcquisitionDeviceProcessingDescription",
                "DerivationDescription", "BodyPartExamined"]
_CLINICAL = ["ContrastBolusAgent", "ContrastBolusRoute", "ContrastBolusVolume", "ConvolutionKernel", "KVP",
             "SliceThickness", "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient",
             "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "BodyPartExamined"]


def _action_table() -> dict[int, str]:
    from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table

    actions: dict[int, str] = {}
    for name, action in (("X_TAGS", "X"), ("X_Z_TAGS", "X"), ("X_D_TAGS", "X"), ("X_Z_D_TAGS", "X"),
                         ("Z_TAGS", "Z"), ("Z_D_TAGS", "D"), ("D_TAGS", "D"), ("U_TAGS", "U"),
                         ("X_Z_U_STAR_TAGS", "U")):
        for tag in getattr(table, name):
            if len(tag) == 2:
                actions[int(Tag(tag))] = action
    return actions


_ACTIONS = _action_table()
_PSEUDONYM_ELEMENTS = {int(Tag("PatientID")), int(Tag("PatientName"))}
_DATE_VRS = ("DA", "DT")
# Identifying in themselves: emptied whatever the longitudinal options say.
_NEVER_SHIFTED = {int(Tag("PatientBirthDate")), int(Tag("PatientBirthTime"))}


@dataclass
class DeidReport:
    """What de-identification did to one series (no PHI in it)."""

    changed: dict[str, int] = field(default_factory=dict)  # action -> attribute count
    flags: list[dict] = field(default_factory=list)

    def count(self, action: str) -> None:
        self.changed[action] = self.changed.get(action, 0) + 1

    def as_dict(self) -> dict:
        return {"changed": dict(sorted(self.changed.items())), "flags": self.flags}


class Deidentifier:
    """Applies the Basic Profile plus options; keyed so that results repeat across runs."""

    def __init__(self, key: bytes, options: list[Option] | tuple = (), method_note: str = ""):
        self.key = key
        self.options = set(options)
        self.method_note = method_note
        self._keep = {int(Tag(name)) for option, names in _RETAINED.items() if option in self.options for name in names}
        self._keep |= {int(Tag(name)) for name in _CLINICAL}
        self._clean = {int(Tag(name)) for name in _DESCRIPTORS} | {int(Tag(name)) for name in _CLINICAL
                                                                   if name in ("ContrastBolusAgent",)}

    # -- pseudonyms --------------------------------------------------------
    def digest(self, kind: str, value: str) -> bytes:
        """The keyed HMAC of a value: the root of every pseudonym and key radlabel derives."""
        return hmac.new(self.key, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        if Option.RETAIN_UIDS in self.options or not value:
            return value
        return "2.25." + str(int.from_bytes(self.digest("uid", value)[:16], "big"))

    def patient_pseudonym(self, patient_id: str) -> str:
        return "RL" + self.digest("patient", patient_id).hex()[:12].upper()

    def date_shift_days(self, patient_id: str) -> int:
        """A per-patient shift between 30 and 3,000 days into the past."""
        return -(30 + int.from_bytes(self.digest("dateshift", patient_id)[:4], "big") % 2971)

    # -- the pass ----------------------------------------------------------
    def deidentify(self, ds: Dataset, report: DeidReport | None = None) -> Dataset:
        """Return a de-identified copy of ``ds`` (the input is left untouched)."""
        report = report if report is not None else DeidReport()
        patient_id = str(ds.get("PatientID", "") or "")
        phi = self._phi_strings(ds)
        out = Dataset()
        out.file_meta = ds.file_meta.copy() if hasattr(ds, "file_meta") else Dataset()
        self._copy(ds, out, patient_id, phi, report)
        pseudonym = self.patient_pseudonym(patient_id)
        out.PatientID = pseudonym
        out.PatientName = pseudonym + "^"  # one component, said explicitly (PS3.5 6.2.1.2)
        out.PatientIdentityRemoved = "YES"
        codes = [BASIC_PROFILE_CODE] + sorted(option.code for option in self.options)
        out.DeidentificationMethod = ("radlabel PS3.15 Basic Profile" + (f"; {self.method_note}" if self.method_note else ""))[:64]
        method_items = []
        for code in codes:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", _METHOD_MEANINGS[code]
            method_items.append(item)
        out.DeidentificationMethodCodeSequence = Sequence(method_items)
        if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in self.options:
            out.LongitudinalTemporalInformationModified = "MODIFIED"
        elif Option.RETAIN_LONGITUDINAL_FULL_DATES in self.options:
            out.LongitudinalTemporalInformationModified = "UNMODIFIED"
        else:
            out.LongitudinalTemporalInformationModified = "REMOVED"
        if "SOPInstanceUID" in out and hasattr(out, "file_meta"):
            out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
        return out

    def _phi_strings(self, ds: Dataset) -> list[str]:
        """Identifying strings to scrub out of kept free text."""
        values = []
        for keyword in ("PatientName", "PatientID", "OtherPatientIDs", "AccessionNumber", "PatientBirthDate",
                        "InstitutionName", "ReferringPhysicianName", "OperatorsName", "PerformingPhysicianName"):
            value = str(ds.get(keyword, "") or "")
            values += [part for part in re.split(r"[\^ ,]+", value) if len(part) >= 3]
            if len(value) >= 3:
                values.append(value)
        return sorted(set(values), key=len, reverse=True)

    def _scrub(self, text: str, phi: list[str]) -> str:
        for value in phi:
            text = re.sub(re.escape(value), "", text, flags=re.IGNORECASE)
        return " ".join(text.split())

    def _copy(self, source: Dataset, target: Dataset, patient_id: str, phi: list[str], report: DeidReport) -> None:
        for element in source:
            tag = int(element.tag)
            group = tag >> 16
            if element.tag.is_private:
                report.count("removed_private")
                continue
            if 0x5000 <= group <= 0x50FF or (0x6000 <= group <= 0x60FF and (tag & 0xFFFF) in (0x3000, 0x4000)):
                report.count("removed_curve_or_overlay")
                continue
            if tag in _PSEUDONYM_ELEMENTS:
                continue  # set after the pass
            action = _ACTIONS.get(tag)
            if (element.VR in _DATE_VRS or element.VR == "TM") and tag not in _NEVER_SHIFTED:
                handled = self._temporal(element, target, patient_id, action, report)
                if handled:
                    continue
            if tag in self._keep and tag not in self._clean:
                target.add(element)
                continue
            if tag in self._clean or (action is not None and tag in self._clean):
                if element.VR in ("LO", "SH", "ST", "LT", "UT", "CS") and element.value:
                    cleaned = self._scrub(str(element.value), phi)
                    target.add(DataElement(element.tag, element.VR, cleaned))
                    report.count("cleaned")
                else:
                    target.add(element)
                continue
            if element.VR == "SQ":
                if action == "X":
                    report.count("removed")
                    continue
                items = []
                for item in element.value:
                    copy = Dataset()
                    self._copy(item, copy, patient_id, phi, report)
                    items.append(copy)
                target.add(DataElement(element.tag, "SQ", Sequence(items)))
                continue
            if action is None:
                target.add(element)
            elif action == "U":
                if element.VR == "UI":
                    value = element.value
                    new = [self.uid(str(v)) for v in value] if element.VM > 1 else self.uid(str(value))
                    target.add(DataElement(element.tag, "UI", new))
                    report.count("uid_replaced")
                else:
                    report.count("removed")
            elif action == "X":
                report.count("removed")
            elif action == "Z":
                target.add(DataElement(element.tag, element.VR, None))
                report.count("emptied")
            elif action == "D":
                target.add(DataElement(element.tag, element.VR, _dummy(element.VR)))
                report.count("replaced")

    def _temporal(self, element: DataElement, target: Dataset, patient_id: str, action: str | None,
                  report: DeidReport) -> bool:
        """Dates and times under the longitudinal options; False when the table decides."""
        if action is None:
            return False
        if Option.RETAIN_LONGITUDINAL_FULL_DATES in self.options:
            target.add(element)
            return True
        if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in self.options:
            if element.VR == "TM":
                target.add(element)
            else:
                target.add(DataElement(element.tag, element.VR, _shift(element.value, element.VR,
                                                                       self.date_shift_days(patient_id))))
                report.count("date_shifted")
            return True
        return False


def _dummy(vr: str):
    return {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "PN": "ANONYMIZED", "UI": "2.25.0",
            "IS": "0", "DS": "0", "US": 0, "SS": 0, "UL": 0, "SL": 0, "FL": 0.0, "FD": 0.0}.get(vr, "ANONYMIZED")


def _shift(value, vr: str, days: int):
    if not value:
        return value
    values = list(value) if not isinstance(value, str) and hasattr(value, "__iter__") else [value]
    shifted = []
    for item in values:
        text = str(item)
        try:
            day = dt.datetime.strptime(text[:8], "%Y%m%d") + dt.timedelta(days=days)
        except ValueError:
            shifted.append("19000101" if vr == "DA" else "19000101000000")
            continue
        shifted.append(day.strftime("%Y%m%d") + (text[8:] if vr == "DT" else ""))
    return shifted if len(shifted) > 1 else shifted[0]
