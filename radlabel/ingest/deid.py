"""De-identification: DICOM PS3.15 Basic Profile with the protocol's retention options, as an allow-list.

The tables are in ``deid_tables``: Table E.1-1's Basic Profile column (from
dicom-anonymizer), its option columns, and radlabel's explicit allow-list of
attributes the table does not list but a usable image needs. Everything else is
removed, at any sequence depth. We apply the tables ourselves in one recursive
pass because we need keyed, repeatable pseudonyms (the same study maps to the
same pseudonym on every sync), per-patient date and time shifts, the retention
options and conformant output (conditional actions resolved by the IOD's type).

Identifiers become HMAC-SHA256 pseudonyms under a secret key kept in the state
directory: ``2.25.<integer>`` UIDs and ``RL…`` patient IDs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import re
from dataclasses import dataclass, field

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from radlabel.ingest import deid_tables as tables
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

_PSEUDONYM_ELEMENTS = {int(Tag("PatientID")), int(Tag("PatientName"))}
_TEMPORAL_VRS = ("DA", "DT", "TM")
_TEXT_VRS = ("LO", "SH", "ST", "LT", "UT", "CS", "UC")
# Free text (not coded strings): an allow-listed one is kept only once the source's identifying strings are out
# of it (a device an institution built itself names the institution in Manufacturer).
_FREE_TEXT_VRS = ("LO", "SH", "ST", "LT", "UT", "UC")
# Type 1 (or 1C) in the enhanced multi-frame, segmentation, SR and waveform IODs (Enhanced General
# Equipment, Enhanced MR/CT Image, Content Identification, SR Document General, Waveform Identification):
# there a conditional X/D, X/Z/D or Z/D action must dummy, not delete.
_TYPE1_ENHANCED = {"DeviceSerialNumber", "AcquisitionDateTime", "ContentDate", "ContentTime", "ManufacturerModelName",
                   "SoftwareVersions"}
_SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"
_PHI_NAMES = ("PatientName", "PatientID", "OtherPatientIDs", "AccessionNumber", "PatientBirthDate", "InstitutionName",
              "ReferringPhysicianName", "OperatorsName", "PerformingPhysicianName", "StationName", "DeviceSerialNumber",
              "InstitutionAddress")
# (the character set too: it decides what the encoded values say)
_PHI_TAGS = tuple(int(Tag(name)) for name in ("SpecificCharacterSet",) + _PHI_NAMES)
_MEMO_SIZE = 20_000
# A time offset must move the time of day: between 1 h and 23 h on top of the day shift.
_MIN_SECONDS, _SECONDS_SPAN = 3600, 79200


def resolve(action: str, required: bool) -> str:
    """A Table E.1-1 action as applied: the conditional ones keep the object conformant (PS3.15 E.1.1).

    X/Z becomes Z (Table E.1-1 gives X/Z where some IOD has the attribute as Type 2: empty is conformant
    and carries nothing); X/D and X/Z/D become D where the IOD needs a value (Type 1/1C), X elsewhere
    (an empty Type 1C with its condition unmet is an error too); Z/D becomes Z unless required.
    """
    if action in ("X/D", "X/Z/D", "Z/D") and required:
        return "D"
    return {"X/Z": "Z", "X/D": "X", "X/Z/D": "X", "Z/D": "Z", "X/Z/U*": "U"}.get(action, action)


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
        # Values already worked out, by their source value: a series repeats most of them on every instance.
        self._memo: dict[tuple, object] = {}
        # keyword -> K/C for the options in force (a later option never weakens an earlier K).
        self._option_actions: dict[str, str] = {}
        for option in sorted(self.options, key=lambda o: o.value):
            for name, action in tables.OPTION_ACTIONS.get(option, {}).items():
                if self._option_actions.get(name) != "K":
                    self._option_actions[name] = action

    # -- pseudonyms --------------------------------------------------------
    def digest(self, kind: str, value: str) -> bytes:
        """The keyed HMAC of a value: the root of every pseudonym and key radlabel derives."""
        return hmac.new(self.key, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        if Option.RETAIN_UIDS in self.options or not value:
            return value
        return self._remembered(("uid", value),
                                lambda: "2.25." + str(int.from_bytes(self.digest("uid", value)[:16], "big")))

    def _remembered(self, key: tuple, work):
        """``work()``, once per key (a bounded memo: a long-lived worker sees many series)."""
        if key not in self._memo:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = work()
        return self._memo[key]

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
        self._copy(ds, out, self._context(ds, phi), report)
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

    def _phi_strings(self, ds: Dataset) -> tuple[str, ...]:
        """Identifying strings to scrub out of kept free text."""
        encoded = tuple(_value_key(ds.get_item(tag)) if tag in ds else None for tag in _PHI_TAGS)
        return self._remembered(("phi", encoded), lambda: _identifying_strings(ds))

    def _scrub(self, text: str, phi: tuple[str, ...]) -> str:
        def scrubbed() -> str:
            cleaned = text
            for value in phi:
                cleaned = re.sub(re.escape(value), "", cleaned, flags=re.IGNORECASE)
            return " ".join(cleaned.split())
        return self._remembered(("scrub", text, phi), scrubbed)

    def _context(self, ds: Dataset, phi: tuple[str, ...]) -> "_Context":
        sop_class = ds.get("SOPClassUID", "")
        enhanced = ("SharedFunctionalGroupsSequence" in ds or str(sop_class) == _SEGMENTATION
                    or any(word in getattr(sop_class, "name", "") for word in ("Enhanced", "SR", "Waveform", "ECG")))
        return _Context(str(ds.get("PatientID", "") or ""), phi, _TYPE1_ENHANCED if enhanced else set(), ds)

    def _copy(self, source: Dataset, target: Dataset, ctx: "_Context", report: DeidReport) -> None:
        """One level of the recursive pass. An element read from a file stays in its encoded form (pydicom's raw
        element) unless its action needs its value: one kept as it is is neither decoded here nor encoded again
        when the copy is stored (STOW), which is most of an image's elements, pixel data included, and one removed
        is never decoded. Everything else is decoded and decided on its value."""
        raw_kept = _same_encoding(source, target)
        for tag in sorted(source.keys()):
            element = source.get_item(tag)
            group = tag >> 16
            if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
                # Curves and overlays (Table E.1-1 lists their data as X): the whole group goes, or the
                # Overlay Plane module would be left without its data.
                report.count("removed_curve_or_overlay")
                continue
            if tag in _PSEUDONYM_ELEMENTS or group == 0x0002:
                continue  # set after the pass
            if group & 1:
                if Option.RETAIN_SAFE_PRIVATE in self.options:
                    self._private(source[tag], source, target, report)
                else:
                    report.count("removed_private")
                continue
            # (pydicom gives a known tag written as UN its dictionary VR; one still UN is decoded and decided)
            if element.is_raw and element.VR in (None, "UN"):
                element = source[tag]
            name = tables.keyword(tag)
            action = self._action(tag, name, element, ctx)
            if action == "K" and raw_kept and element.is_raw and element.VR not in ("SQ", "UN"):
                target._dict[element.tag] = element  # an immutable tuple: the copy shares nothing mutable
            elif action not in ("X", "Z", "D"):
                self._apply(action, source[tag], target, ctx, report)
            else:  # these need the element's tag and VR only
                self._apply(action, element, target, ctx, report)

    def _action(self, tag: int, name: str, element: DataElement, ctx: "_Context") -> str:
        """What happens to one element: K, C, S (shift), Z, D, X, U or R (recurse into a kept sequence)."""
        basic = tables.basic_actions().get(tag)
        option = self._option_actions.get(name)
        if name in tables.DEVICE_TEMPORAL:
            return "K" if Option.RETAIN_LONGITUDINAL_FULL_DATES in self.options else "X"
        if element.VR in _TEMPORAL_VRS and basic and name not in tables.NEVER_SHIFTED:
            if Option.RETAIN_LONGITUDINAL_FULL_DATES in self.options:
                return "K"
            if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in self.options:
                return "S"
        if option == "K" and name in tables.GENERALISED:
            return "G"
        if option == "K":
            return "R" if element.VR == "SQ" else "K"
        if option == "C":
            return "R" if element.VR == "SQ" else "C"
        if basic is not None:
            resolved = resolve(basic, name in ctx.required)
            if resolved == "X" and basic != "X" and name in tables.TYPE2_SOMEWHERE:
                resolved = "Z"
            if element.VR == "SQ" and resolved in ("D", "U"):
                return "R"  # a sequence is dummied by de-identifying its items
            return resolved
        if name in tables.DEVICE_MODEL:  # not in the table: device identity by radlabel's rule (deid_tables)
            return "D" if name in ctx.required else "X"
        if name in tables.SAFE:
            return "R" if element.VR == "SQ" else ("C" if element.VR in _FREE_TEXT_VRS else "K")
        if name in tables.CLEANED:
            return "C"
        if name in tables.DUMMIED:
            return "D"
        return "X"  # not in the table nor the allow-list: removed

    def _apply(self, action: str, element: DataElement, target: Dataset, ctx: "_Context",
               report: DeidReport) -> None:
        if action == "K":
            target.add(_own(element))
        elif action == "R":
            items = []
            for item in element.value:
                item_copy = Dataset()
                self._copy(item, item_copy, ctx, report)
                items.append(item_copy)
            target.add(DataElement(element.tag, "SQ", Sequence(items)))
        elif action == "C":
            values = list(element.value) if element.VM > 1 else [element.value]
            cleaned = [self._scrub(str(v), ctx.phi) if v else v for v in values]
            if element.VR in _TEXT_VRS and cleaned != [" ".join(str(v).split()) if v else v for v in values]:
                target.add(DataElement(element.tag, element.VR, cleaned if element.VM > 1 else cleaned[0]))
                report.count("cleaned")
            else:
                target.add(_own(element))  # nothing identifying in it: kept exactly as it was
        elif action == "G":
            target.add(DataElement(element.tag, element.VR, _generalised(tables.keyword(int(element.tag)),
                                                                         element.value)))
            report.count("generalised")
        elif action == "S":
            target.add(DataElement(element.tag, element.VR, self._shifted(element, ctx)))
            report.count("date_shifted")
        elif action == "U" and element.VR == "UI":
            value = element.value
            new = [self.uid(str(v)) for v in value] if element.VM > 1 else self.uid(str(value))
            target.add(DataElement(element.tag, "UI", new))
            report.count("uid_replaced")
        elif action == "Z":
            target.add(DataElement(element.tag, element.VR, [] if element.VR == "SQ" else None))
            report.count("emptied")
        elif action == "D":
            target.add(DataElement(element.tag, element.VR, _dummy(element.VR)))
            report.count("replaced")
        else:
            report.count("removed" if tables.basic_actions().get(int(element.tag)) else "removed_unlisted")

    def _private(self, element: DataElement, source: Dataset, target: Dataset, report: DeidReport) -> None:
        """A private element under Retain Safe Private: kept only if the safe-private dictionary lists it."""
        tag = element.tag
        if tag.is_private_creator:
            if any(key[0] == tag.group and key[1] == str(element.value).strip() for key in tables.SAFE_PRIVATE):
                target.add(element)
                return
        else:
            creator_tag = Tag(tag.group, tag.element >> 8)
            creator = str(source[creator_tag].value).strip() if creator_tag in source else ""
            if (tag.group, creator, tag.element & 0xFF) in tables.SAFE_PRIVATE:
                target.add(element)
                report.count("kept_safe_private")
                return
        report.count("removed_private")

    # -- time ------------------------------------------------------------------
    def time_shift(self, patient_id: str) -> dt.timedelta:
        """The patient's offset: whole days into the past plus 1-23 h, so no time of day survives."""
        seconds = _MIN_SECONDS + int.from_bytes(self.digest("timeshift", patient_id)[:4], "big") % _SECONDS_SPAN
        return dt.timedelta(days=self.date_shift_days(patient_id), seconds=seconds)

    def _shifted(self, element: DataElement, ctx: "_Context"):
        """A date, time or date-time moved by the patient's offset; a date and its paired time move together."""
        offset = self._remembered(("offset", ctx.patient_id), lambda: self.time_shift(ctx.patient_id))
        pair = _pair_value(ctx.root, tables.keyword(int(element.tag)), element.VR)
        value = element.value
        key = value if isinstance(value, str) or not hasattr(value, "__iter__") else tuple(value)
        return self._remembered(("shift", element.VR, key, offset, pair),
                                lambda: _shift_value(value, element.VR, offset, pair))


def _identifying_strings(ds: Dataset) -> tuple[str, ...]:
    values = []
    for name in _PHI_NAMES:
        value = str(ds.get(name, "") or "")
        values += [part for part in re.split(r"[\^ ,]+", value) if len(part) >= 3]
        if len(value) >= 3:
            values.append(value)
    return tuple(sorted(set(values), key=len, reverse=True))


def _value_key(element) -> object:
    """A hashable stand-in for an element's value: the encoded bytes of a raw element, else its text."""
    return (element.value, element.VR) if element.is_raw else str(element.value)


def _own(element: DataElement) -> DataElement:
    """The copy's own element (a shallow copy: its value is not re-validated): masking or defacing the copy
    later replaces the value of this element, not the source's."""
    own = DataElement.__new__(DataElement)
    own.__dict__.update(element.__dict__)
    return own


def _same_encoding(source: Dataset, target: Dataset) -> bool:
    """Give the copy the source's encoding (transfer syntax, character set) when the source was read from a file,
    so that its raw elements are written back byte for byte; False for a dataset made in memory."""
    implicit, little = source.original_encoding
    if implicit is None or little is None:
        return False
    target.set_original_encoding(implicit, little, source.original_character_set)
    return True


@dataclass
class _Context:
    patient_id: str
    phi: tuple[str, ...]
    required: set
    root: Dataset


def _pair_value(root: Dataset, name: str, vr: str) -> str:
    """The value of this date's time (or this time's date) in the top-level dataset, when there is one."""
    if vr == "DA" and name.endswith("Date"):
        other = name[:-4] + "Time"
    elif vr == "TM" and name.endswith("Time"):
        other = name[:-4] + "Date"
    else:
        return ""
    return str(root.get(other, "") or "") if other in root else ""


def _generalised(name: str, value):
    """A retained patient characteristic in its band (``deid_tables.GENERALISED``): the lower bound of the band, so
    an age of 72 years reads 070Y, a weight of 73.4 kg reads 70; an unreadable value becomes empty."""
    band = tables.GENERALISED[name]
    text = str(value or "").strip()
    try:
        if name == "PatientAge":
            if not re.fullmatch(r"\d{3}[DWMY]", text):
                return None
            # an age in days, weeks or months is a young child's: the first band
            years = int(text[:3]) if text[3] == "Y" else 0
            return f"{min(years // band * band, 90):03d}Y"  # 90 and over in one band (as HIPAA's Safe Harbor)
        number = float(text)
    except (ValueError, IndexError):
        return None
    return f"{round(math.floor(number / band + 1e-9) * band, 3):g}"


def _dummy(vr: str):
    return {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "PN": "ANONYMIZED", "UI": "2.25.0",
            "IS": "0", "DS": "0", "US": 0, "SS": 0, "UL": 0, "SL": 0, "FL": 0.0, "FD": 0.0, "AS": "000D",
            "OB": b"\x00\x00", "OW": b"\x00\x00", "UN": b"\x00\x00", "SQ": []}.get(vr, "ANONYMIZED")


def _shift_value(value, vr: str, offset: dt.timedelta, pair: str):
    if not value:
        return value
    values = list(value) if not isinstance(value, str) and hasattr(value, "__iter__") else [value]
    shifted = [_shift_one(str(item), vr, offset, pair) for item in values]
    return shifted if len(shifted) > 1 else shifted[0]


def _shift_one(text: str, vr: str, offset: dt.timedelta, pair: str) -> str:
    """One value moved; unreadable values become the dummy (never kept: they may still identify)."""
    try:
        if vr == "DA":
            day = dt.datetime.strptime(text[:8], "%Y%m%d")
            if not pair:  # a lone date moves by whole days (no carry from a time it does not have)
                return (day + dt.timedelta(days=offset.days)).strftime("%Y%m%d")
            return (dt.datetime.combine(day.date(), _parse_time(pair)) + offset).strftime("%Y%m%d")
        if vr == "TM":
            day = dt.datetime.strptime(pair[:8], "%Y%m%d") if pair else dt.datetime(2000, 1, 1)
            moment = dt.datetime.combine(day.date(), _parse_time(text)) + offset
            return moment.strftime("%H%M%S") + _fraction(text)
        moment = dt.datetime.strptime(text[:14].ljust(14, "0"), "%Y%m%d%H%M%S") + offset
        return moment.strftime("%Y%m%d%H%M%S")[:max(len(text[:14]), 8)] + _fraction(text[14:], dt_tail=True)
    except ValueError:
        return _dummy(vr)


def _parse_time(text: str) -> dt.time:
    digits = text.split(".")[0].replace(":", "").strip()
    return dt.datetime.strptime(digits.ljust(6, "0")[:6], "%H%M%S").time()


def _fraction(text: str, dt_tail: bool = False) -> str:
    """The fractional seconds (and a date-time's UTC offset) carried over unchanged."""
    if dt_tail:
        return text
    return "." + text.split(".", 1)[1] if "." in text else ""
