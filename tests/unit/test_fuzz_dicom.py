"""Fuzzing the DICOM file boundary: damaged, foreign and odd files through the reader and the CLI.

Seeded mutation loops (deterministic) over a small phantom series: truncation, byte flips, huge element
lengths, wrong VRs, header values that are not what their VR promises, no preamble, empty and foreign
files. The contract: a file is read, or refused with one RadlabelError sentence naming it; the CLI exits
0/1 or 2 with one line and no traceback; nothing is half written; no PHI in any message.
"""

from __future__ import annotations

import copy
import io
import json
import random
import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement

from radlabel.cli import main
from radlabel.dicom_files import read_dicom_files
from radlabel.errors import RadlabelError
from radlabel.ingest.deid import DeidReport, Deidentifier
from radlabel.ingest.validate import validate_series
from radlabel.phantom import make_ct_study

SEED = 1234
# pydicom warns about the odd values these tests write on purpose (the CLI and the reader silence it).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
PATIENT_NAME = "ZZFUZZ^QUUXINE"  # a fake patient: must never show in a message
PATIENT_ID = "PHI424242"
PHI = (PATIENT_NAME, "ZZFUZZ", "QUUXINE", PATIENT_ID)
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"}
SOME_VRS = ["AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OW", "PN", "SH", "SL",
            "SQ", "SS", "ST", "TM", "UI", "UL", "UN", "US", "UT", "ZZ", "\x00\x01", "lo"]


# -- the series and its bytes ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def series():
    study = make_ct_study(seed=21, slices=4, size=32)
    files = []
    for ds in study.datasets:
        ds = copy.deepcopy(ds)
        ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
        ds.ImageComments = f"patient {PATIENT_NAME}"
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append((f"{ds.SOPInstanceUID}.dcm", buffer.getvalue()))
    return files


def raw_elements(data: bytes) -> list[RawDataElement]:
    """The top-level elements of a good file, with their positions (before any value is converted)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    items = [ds.get_item(tag) for tag in ds.keys()]
    raws = [item for item in items if isinstance(item, RawDataElement)]
    at = data.index(b"\x08\x00\x05\x00CS", 132)  # Specific Character Set: pydicom reads it eagerly
    length = struct.unpack("<H", data[at + 6:at + 8])[0]
    return [RawDataElement(pydicom.tag.Tag(0x00080005), "CS", length, data[at + 8:at + 8 + length], at + 8, False, True),
            *raws]


def header_size(vr: str) -> int:
    return 12 if vr in LONG_VRS else 8


def element(tag: int, vr: str, value: bytes) -> bytes:
    """One explicit VR little endian element, written by hand (pydicom would refuse the odd ones)."""
    if len(value) % 2:
        value += b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("latin-1")[:2].ljust(2, b" ")
    if vr in LONG_VRS:
        return head + b"\0\0" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value) & 0xFFFF) + value


def replace(data: bytes, raw: RawDataElement, new: bytes) -> bytes:
    start = raw.value_tell - header_size(raw.VR)
    return data[:start] + new + data[raw.value_tell + raw.length:]


def mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One random mutation of a good file: (what was done, the bytes)."""
    raws = raw_elements(data)
    kind = rng.choice(["truncate", "flip", "length", "vr", "text", "splice", "drop", "duplicate"])
    if kind == "truncate":
        return kind, data[:rng.randrange(len(data))]
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(128, len(b))] = rng.randrange(256)
        return kind, bytes(b)
    raw = rng.choice(raws)
    start = raw.value_tell - header_size(raw.VR)
    b = bytearray(data)
    if kind == "length":
        if raw.VR in LONG_VRS:
            b[raw.value_tell - 4:raw.value_tell] = struct.pack("<I", rng.choice([0xFFFFFFF0, 0x7FFFFFFF, raw.length + 2,
                                                                                   raw.length + 1, 0xFFFFFFFF]))
        else:
            b[raw.value_tell - 2:raw.value_tell] = struct.pack("<H", rng.choice([0xFFFF, 0xFFF0, raw.length + 2,
                                                                                   raw.length + 1, 1]))
        return f"{kind} {raw.tag}", bytes(b)
    if kind == "vr":  # the same bytes, another VR in the header
        vr = rng.choice(SOME_VRS)
        return f"{kind} {raw.tag} {vr!r}", replace(data, raw, element(raw.tag, vr, raw.value or b""))
    if kind == "text":  # a value of the wrong type, quoting the patient (a message must not repeat it)
        vr = rng.choice(["LO", "SH", "UT", "DS", "IS", "CS", raw.VR])
        text = rng.choice([PATIENT_NAME, PATIENT_ID, "x" * rng.randint(1, 300), "-1", "1e999", "nan\\nan", "ÿ\x00é",
                           "0", "99999999999999999999"])
        return f"{kind} {raw.tag} {vr}", replace(data, raw, element(raw.tag, vr, text.encode("latin-1")))
    if kind == "splice":  # random bytes in place of a value, the header kept
        junk = bytes(rng.randrange(256) for _ in range(raw.length))
        return f"{kind} {raw.tag}", bytes(b[:raw.value_tell]) + junk + bytes(b[raw.value_tell + raw.length:])
    if kind == "drop":
        return f"{kind} {raw.tag}", data[:start] + data[raw.value_tell + raw.length:]
    return f"{kind} {raw.tag}", data[:raw.value_tell + raw.length] + data[start:]  # the element twice


def foreign_files(data: bytes) -> dict[str, bytes]:
    """Files that are not (or no longer) Part 10 DICOM."""
    return {
        "empty": b"",
        "text": f"Dear colleague, {PATIENT_NAME} ({PATIENT_ID}) ...\n".encode(),
        "json": json.dumps({"PatientName": PATIENT_NAME}).encode(),
        "zeros": bytes(4096),
        "preamble only": bytes(128) + b"DICM",
        "no preamble": data[128:],
        "no DICM": data[132:],
        "random": random.Random(7).randbytes(3000),
        "dicm then junk": bytes(128) + b"DICM" + random.Random(8).randbytes(500),
    }


# -- the properties -------------------------------------------------------------------------------------
def assert_clean_message(message: str, *names: str) -> None:
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message, message
    assert not any(value in message for value in PHI), message
    if names:
        assert any(name in message for name in names), message


def read_or_refuse(path: Path):
    """The reader's contract: datasets, or one RadlabelError sentence naming the file."""
    try:
        return read_dicom_files([path])
    except RadlabelError as exc:
        assert_clean_message(str(exc), str(path))
        return None


def test_the_reader_reads_or_names_the_file_for_random_mutations(series, tmp_path):
    rng = random.Random(SEED)
    refused = accepted = 0
    for n in range(360):
        name, data = series[n % len(series)]
        what, mutated = mutate(rng, data)
        path = tmp_path / f"case{n}.dcm"
        path.write_bytes(mutated)
        datasets = read_or_refuse(path)
        if datasets is None:
            refused += 1
            continue
        accepted += 1
        # What the reader lets through, validation and de-identification take without crashing,
        # and say nothing of the patient in their findings.
        report, _ = validate_series(datasets)
        for finding in report.findings:
            assert_clean_message(finding.message)
        Deidentifier(b"k" * 32).deidentify(datasets[0], DeidReport())
    assert refused > 100 and accepted > 20  # the loop exercises both sides


def test_every_truncation_is_refused_unless_it_falls_between_elements(series, tmp_path):
    name, data = series[0]
    boundaries = {raw.value_tell + raw.length for raw in raw_elements(data)}
    rng = random.Random(SEED + 1)
    path = tmp_path / "cut.dcm"
    for cut in sorted(rng.sample(range(len(data)), 150)):
        path.write_bytes(data[:cut])
        datasets = read_or_refuse(path)
        if datasets is not None:
            assert cut in boundaries, f"a file cut at byte {cut} of {len(data)} was read as whole"


@pytest.mark.parametrize("keyword, vr, text", [
    ("Rows", "LO", PATIENT_NAME), ("Columns", "SH", PATIENT_ID), ("BitsAllocated", "LO", PATIENT_NAME),
    ("NumberOfFrames", "IS", PATIENT_NAME), ("NumberOfFrames", "IS", "-3"), ("NumberOfFrames", "IS", "0x10"),
    ("SamplesPerPixel", "UT", PATIENT_NAME), ("Rows", "US", "\x00"), ("PixelData", "LO", PATIENT_NAME),
])
def test_image_size_attributes_of_the_wrong_vr_are_refused_without_quoting_them(series, tmp_path, keyword, vr, text):
    name, data = series[0]
    tag = pydicom.datadict.tag_for_keyword(keyword)
    raws = {raw.tag: raw for raw in raw_elements(data)}
    new = element(tag, vr, text.encode("latin-1"))
    if tag in raws:
        mutated = replace(data, raws[tag], new)
    else:  # insert it in tag order
        after = max(raw for raw in raws.values() if raw.tag < tag)
        mutated = data[:after.value_tell + after.length] + new + data[after.value_tell + after.length:]
    path = tmp_path / "wrong-vr.dcm"
    path.write_bytes(mutated)
    with pytest.raises(RadlabelError) as error:
        read_dicom_files([path])
    assert_clean_message(str(error.value), str(path))
    assert "damaged DICOM file" in str(error.value)


@pytest.mark.parametrize("keyword, vr, text", [
    ("ImagePositionPatient", "DS", "nan\\0\\0"), ("ImageOrientationPatient", "DS", "1\\0\\0\\0\\inf\\0"),
    ("ImagePositionPatient", "LO", PATIENT_NAME), ("PixelSpacing", "DS", "x\\y"), ("ImageType", "US", "ab"),
    ("ImageType", "SQ", ""), ("RescaleSlope", "DS", PATIENT_NAME), ("RescaleIntercept", "LO", PATIENT_ID),
    ("PhotometricInterpretation", "CS", PATIENT_NAME), ("SpecificCharacterSet", "CS", PATIENT_NAME),
    ("InstanceNumber", "IS", PATIENT_NAME), ("SeriesInstanceUID", "UI", "not a UID!"),
])
def test_odd_header_values_are_findings_that_quote_nothing(series, tmp_path, keyword, vr, text, capsys):
    """Values the reader can hold: the series is validated (quarantined where unusable), never a crash or PHI."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    folder = tmp_path / "series"
    folder.mkdir()
    for name, data in series:
        raws = {raw.tag: raw for raw in raw_elements(data)}
        (folder / name).write_bytes(replace(data, raws[tag], element(tag, vr, text.encode("latin-1"))))
    code = main(["validate", str(folder), "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (code, out, err)
    assert_clean_message(err)
    assert not any(value in out for value in PHI), out
    if code == 2:
        assert_cli_error(code, out, err, str(folder))
    else:
        assert json.loads(out)["series"]
    if keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        assert code == 1 and "missing_geometry" in out  # NaN, infinite or text geometry is no geometry


def test_foreign_files_named_explicitly_are_refused_by_name(series, tmp_path):
    name, data = series[0]
    for label, content in foreign_files(data).items():
        path = tmp_path / f"{label.replace(' ', '_')}.dcm"
        path.write_bytes(content)
        with pytest.raises(RadlabelError) as error:
            read_dicom_files([path])
        assert_clean_message(str(error.value), str(path))


def test_a_folder_of_foreign_files_holds_no_dicom(series, tmp_path):
    for label, content in foreign_files(series[0][1]).items():
        if not content[128:132] == b"DICM":
            (tmp_path / label.replace(" ", "_")).write_bytes(content)
    (tmp_path / "not_a_file").mkdir()
    with pytest.raises(RadlabelError, match="no DICOM files found"):
        read_dicom_files([tmp_path])


# -- the CLI: validate, deid, samples load ---------------------------------------------------------------
def cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))  # any exception other than the handled ones fails the test
    out, err = capsys.readouterr()
    return code, out, err


def write_series(folder: Path, series, mutated_index: int | None = None, mutated: bytes = b"") -> Path | None:
    folder.mkdir(parents=True)
    target = None
    for index, (name, data) in enumerate(series):
        path = folder / name
        if index == mutated_index:
            path.write_bytes(mutated)
            target = path
        else:
            path.write_bytes(data)
    return target


def assert_cli_error(code: int, out: str, err: str, *names: str) -> None:
    assert code == 2, (code, out, err)
    assert err.startswith("radlabel: error: ") and err.count("\n") == 1, err
    assert_clean_message(err, *names)


def test_validate_cli_on_random_mutations(series, tmp_path, capsys):
    rng = random.Random(SEED + 2)
    for n in range(50):
        index = rng.randrange(len(series))
        what, mutated = mutate(rng, series[index][1])
        folder = tmp_path / f"v{n}"
        target = write_series(folder, series, index, mutated)
        explicit = rng.random() < 0.5  # a file named is always read; a folder skips files without DICM
        code, out, err = cli(capsys, "validate", str(target if explicit else folder), "--json")
        assert code in (0, 1, 2), (what, code, err)
        assert not any(value in out + err for value in PHI), (what, out, err)
        if code == 2:
            assert_cli_error(code, out, err, str(target), "no DICOM files found")
        else:
            assert err == "" and json.loads(out)["series"], (what, err)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_deid_cli_is_all_or_nothing_on_random_mutations(series, tmp_path, home, capsys):
    rng = random.Random(SEED + 3)
    codes = set()
    for n in range(40):
        index = rng.randrange(len(series))
        what, mutated = mutate(rng, series[index][1])
        source, out_dir = tmp_path / f"in{n}", tmp_path / f"out{n}"
        target = write_series(source, series, index, mutated)
        code, out, err = cli(capsys, "deid", str(source), str(out_dir))
        codes.add(code)
        assert not out_dir.with_name(out_dir.name + ".partial").exists(), what
        assert not any(value in out + err for value in PHI), (what, out, err)
        if code == 0:
            skipped = 0 if mutated[128:132] == b"DICM" else 1
            assert len(list(out_dir.rglob("*.dcm"))) == len(series) - skipped, what
        else:
            assert_cli_error(code, out, err, str(target))
            assert not out_dir.exists(), what  # nothing written
    assert codes == {0, 2}


@pytest.mark.parametrize("case", ["rows as text", "no SOP instance UID", "retained UID with a path",
                                  "file meta element in the data set", "no file meta"])
def test_deid_refuses_or_confines_headers_it_cannot_write(series, tmp_path, home, capsys, case):
    name, data = series[0]
    raws = {raw.tag: raw for raw in raw_elements(data)}
    args = []
    if case == "rows as text":
        mutated = replace(data, raws[0x00280010], element(0x00280010, "LO", PATIENT_NAME.encode()))
    elif case == "no SOP instance UID":
        raw = raws[0x00080018]
        mutated = data[:raw.value_tell - 8] + data[raw.value_tell + raw.length:]
    elif case == "retained UID with a path":  # --option retain_uids keeps header UIDs: they must not name paths
        raw = raws[0x0020000E]
        mutated = replace(data, raw, element(0x0020000E, "UI", b"../../escaped"))
        args = ["--option", "retain_uids"]
    elif case == "no file meta":  # DICM, then the data set: pydicom reads it, guessing the transfer syntax
        mutated = data[:132] + data[raws[0x00080005].value_tell - 8:]
    else:
        first = min(raws.values(), key=lambda r: r.value_tell)
        mutated = data[:first.value_tell - 8] + element(0x00020099, "LO", b"x") + data[first.value_tell - 8:]
    source, out_dir = tmp_path / "in", tmp_path / "out"
    target = write_series(source, series, 0, mutated)
    code, out, err = cli(capsys, "deid", str(source), str(out_dir), *args)
    assert not (tmp_path / "out.partial").exists()
    assert not list(tmp_path.glob("escaped*")) and not (tmp_path.parent / "escaped").exists()
    if code == 0:
        files = list(out_dir.rglob("*.dcm"))
        assert len(files) == len(series) and all(out_dir in f.parents for f in files)
    else:
        assert_cli_error(code, out, err, str(target))
        assert not out_dir.exists()


def test_deid_refuses_a_leftover_partial_folder(series, tmp_path, home, capsys):
    source = tmp_path / "in"
    write_series(source, series)
    (tmp_path / "out.partial").mkdir()
    (tmp_path / "out.partial" / "old.dcm").write_bytes(b"from an interrupted run")
    code, out, err = cli(capsys, "deid", str(source), str(tmp_path / "out"))
    assert_cli_error(code, out, err, "out.partial")
    assert not (tmp_path / "out").exists()


class RecordingOrthanc:
    """Stands in for the PACS's STOW-RS: `samples load` must read every file before storing any."""

    stored: list = []

    @classmethod
    def pacs_loader(cls, settings, **kwargs):
        return cls()

    def store(self, datasets):
        from types import SimpleNamespace

        RecordingOrthanc.stored.extend(str(ds.SOPInstanceUID) for ds in datasets)
        return SimpleNamespace(failed=[], stored=[str(ds.SOPInstanceUID) for ds in datasets])


def test_samples_load_reads_every_file_before_storing_any(series, tmp_path, home, capsys, monkeypatch):
    import connectors.wiring

    monkeypatch.setattr(connectors.wiring, "OrthancDicomWeb", RecordingOrthanc)  # the PACS loader the CLI wires
    rng = random.Random(SEED + 4)
    foreign = list(foreign_files(series[0][1]).values())
    for n in range(50):
        RecordingOrthanc.stored = []
        index = rng.randrange(len(series))
        mutated = rng.choice(foreign) if n % 5 == 0 else mutate(rng, series[index][1])[1]
        folder = tmp_path / f"s{n}"
        target = write_series(folder, series, index, mutated)
        code, out, err = cli(capsys, "samples", "load", str(folder), str(target), "--no-synthetic", "--no-real")
        assert not any(value in out + err for value in PHI), (out, err)
        if code == 2:
            assert_cli_error(code, out, err, str(target))
            assert RecordingOrthanc.stored == []  # nothing stored when one file is bad
        else:
            assert code == 0 and "error" not in err, err
            assert len(RecordingOrthanc.stored) >= len(series)
